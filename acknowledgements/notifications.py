"""Building and sending the portal's emails."""

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

from .models import Receipt


def send_receipt(*, receipt_id: int) -> None:
    """Email a signer their sealed receipt as an attachment."""
    receipt = Receipt.objects.select_related(
        "acknowledgement__person", "acknowledgement__revision__policy"
    ).get(pk=receipt_id)
    acknowledgement = receipt.acknowledgement
    context = {
        "acknowledgement": acknowledgement,
        "revision": acknowledgement.revision,
        "person": acknowledgement.person,
        "my_acknowledgements_url": settings.PORTAL_BASE_URL
        + reverse("acknowledgements:my_acknowledgements"),
        "company": settings.PORTAL_COMPANY_NAME,
    }
    message = EmailMultiAlternatives(
        subject=render_to_string("email/receipt_subject.txt", context).strip(),
        body=render_to_string("email/receipt.txt", context),
        to=[acknowledgement.person.email],
    )
    message.attach_alternative(render_to_string("email/receipt.html", context), "text/html")
    with receipt.pdf.open("rb") as pdf:
        message.attach(
            f"receipt-{acknowledgement.receipt_number}.pdf", pdf.read(), "application/pdf"
        )
    message.send()
