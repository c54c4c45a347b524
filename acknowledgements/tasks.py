"""Background work. Tasks take ids, look the rows up again, and call services or modules."""

from django.tasks import task


@task()
def issue_receipt(acknowledgement_id: int) -> None:
    from .services import issue_receipt as issue  # services enqueue these tasks: import late

    issue(acknowledgement_id=acknowledgement_id)


@task()
def email_receipt(receipt_id: int) -> None:
    from .notifications import send_receipt

    send_receipt(receipt_id=receipt_id)
