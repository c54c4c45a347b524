import io
import json
import zipfile


def test_a_person_downloads_everything_held_about_them(
    signer, revision, sign, logged_in, django_capture_on_commit_callbacks, make_person
):
    other = make_person("Someone Else")
    with django_capture_on_commit_callbacks(execute=True):
        acknowledgement = sign(signer, revision)
    sign(other, revision)

    response = logged_in(signer).get("/acknowledgements/my-data.zip")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    bundle = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    names = set(bundle.namelist())
    assert {"README.txt", "profile.json", "evidence.jsonl", "notifications.json"} <= names
    assert f"receipts/{acknowledgement.receipt_number}.pdf" in names
    assert json.loads(bundle.read("profile.json"))["email"] == signer.email
    evidence = [json.loads(line) for line in bundle.read("evidence.jsonl").splitlines()]
    assert {e["kind"] for e in evidence} >= {"consented", "signed", "receipt_issued"}
    assert all(json.loads(e["payload"])["person_id"] == signer.pk for e in evidence)
    assert b"Someone Else" not in b"".join(bundle.read(name) for name in names)


def test_anonymous_visitors_cannot_download(client):
    assert client.get("/acknowledgements/my-data.zip").status_code == 302
