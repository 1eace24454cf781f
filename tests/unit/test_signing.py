import base64
import hashlib
import hmac

import pytest
from lib import signing
from lib.signing import SignatureError

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = '{"test": 2432232314}'
REFERENCE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def headers(signature, msg_id=MSG_ID, timestamp=TIMESTAMP):
    return {
        "Webhook-Id": msg_id,
        "Webhook-Timestamp": str(timestamp),
        "Webhook-Signature": signature,
    }


def test_known_vector():
    # Independently, straight from the specification's formula.
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    content = f"{MSG_ID}.{TIMESTAMP}.{BODY}".encode()
    expected = "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    assert expected == REFERENCE
    assert signing.sign(SECRET, MSG_ID, TIMESTAMP, BODY) == REFERENCE
    assert signing.sign(SECRET, MSG_ID, TIMESTAMP, BODY.encode()) == REFERENCE


def test_generate_secret():
    secret = signing.generate_secret()
    assert secret.startswith("whsec_")
    assert len(signing.secret_bytes(secret)) == 32
    assert signing.generate_secret() != secret


def test_secret_bytes_falls_back_to_raw():
    assert signing.secret_bytes("not base64!") == b"not base64!"


def test_signature_headers():
    result = signing.signature_headers(SECRET, MSG_ID, BODY, timestamp=TIMESTAMP)
    assert result == {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(TIMESTAMP),
        "webhook-signature": REFERENCE,
    }


def test_signature_headers_default_timestamp_verifies():
    secret = signing.generate_secret()
    result = signing.signature_headers(secret, "msg_1", b"{}")
    signing.verify(secret, result, b"{}")


def test_verify_accepts():
    signing.verify(SECRET, headers(REFERENCE), BODY, now=TIMESTAMP)
    signing.verify(SECRET, headers(REFERENCE), BODY.encode(), now=TIMESTAMP + 300)


def test_verify_rejects_tampered_body():
    with pytest.raises(SignatureError, match="does not match"):
        signing.verify(SECRET, headers(REFERENCE), '{"test": 2432232315}', now=TIMESTAMP)


def test_verify_rejects_other_msg_id():
    with pytest.raises(SignatureError, match="does not match"):
        signing.verify(SECRET, headers(REFERENCE, msg_id="msg_other"), BODY, now=TIMESTAMP)


def test_verify_rejects_stale():
    with pytest.raises(SignatureError, match="too old"):
        signing.verify(SECRET, headers(REFERENCE), BODY, now=TIMESTAMP + 301)


def test_verify_rejects_future():
    with pytest.raises(SignatureError, match="too new"):
        signing.verify(SECRET, headers(REFERENCE), BODY, now=TIMESTAMP - 301)


def test_verify_rejects_non_integer_timestamp():
    with pytest.raises(SignatureError, match="not an integer"):
        signing.verify(SECRET, headers(REFERENCE, timestamp="12.5"), BODY, now=TIMESTAMP)


def test_verify_one_of_several_signatures():
    other = signing.sign(signing.generate_secret(), MSG_ID, TIMESTAMP, BODY)
    value = f"v2,{REFERENCE[3:]} {other} {REFERENCE}"
    signing.verify(SECRET, headers(value), BODY, now=TIMESTAMP)


def test_verify_ignores_other_versions():
    with pytest.raises(SignatureError, match="does not match"):
        signing.verify(SECRET, headers("v1a," + REFERENCE[3:]), BODY, now=TIMESTAMP)


def test_verify_secret_list_second_matches():
    secrets = [signing.generate_secret(), SECRET]
    signing.verify(secrets, headers(REFERENCE), BODY, now=TIMESTAMP)


def test_verify_wrong_secret():
    with pytest.raises(SignatureError, match="does not match"):
        signing.verify([signing.generate_secret()], headers(REFERENCE), BODY, now=TIMESTAMP)


@pytest.mark.parametrize("drop", ["Webhook-Id", "Webhook-Timestamp", "Webhook-Signature"])
def test_verify_rejects_missing_header(drop):
    partial = headers(REFERENCE)
    del partial[drop]
    with pytest.raises(SignatureError, match="Missing") as info:
        signing.verify(SECRET, partial, BODY, now=TIMESTAMP)
    assert drop.lower() in str(info.value)
