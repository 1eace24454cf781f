"""Provider signature presets (lib/signature_presets.py) against the providers' vectors.

GitHub publishes a test vector ("Validating webhook deliveries": secret "It's a Secret to
Everybody", payload "Hello, World!"). Stripe and Shopify publish the algorithm but no fixed
vector: their expected values are computed here straight from the documented formula with
``hmac``/``hashlib``, independently of the code under test.
"""

import base64
import hashlib
import hmac

import pytest
from lib import signature_presets as presets
from lib import signing
from lib.signing import SignatureError

GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_BODY = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

STRIPE_SECRET = "whsec_test_secret"
STRIPE_BODY = b'{"id":"evt_test","object":"event"}'
STRIPE_T = 1492774577

SHOPIFY_SECRET = "hush"
SHOPIFY_BODY = b'{"id":820982911946154508,"email":"jon@doe.ca"}'


def _hex(secret, content):
    return hmac.new(secret.encode(), content, hashlib.sha256).hexdigest()


def _b64(secret, content):
    return base64.b64encode(hmac.new(secret.encode(), content, hashlib.sha256).digest()).decode()


# ---------------------------------------------------------------- GitHub
def test_github_published_vector():
    assert presets.sign("github", GITHUB_SECRET, GITHUB_BODY) == GITHUB_SIGNATURE
    presets.verify("github", GITHUB_SECRET, {"X-Hub-Signature-256": GITHUB_SIGNATURE}, GITHUB_BODY)


def test_github_wrong_secret_body_or_header():
    with pytest.raises(SignatureError, match="does not match"):
        presets.verify("github", "other", {"X-Hub-Signature-256": GITHUB_SIGNATURE}, GITHUB_BODY)
    with pytest.raises(SignatureError, match="does not match"):
        presets.verify("github", GITHUB_SECRET, {"X-Hub-Signature-256": GITHUB_SIGNATURE}, b"Hello, World?")
    with pytest.raises(SignatureError, match="x-hub-signature-256"):
        presets.verify("github", GITHUB_SECRET, {"X-Hub-Signature": GITHUB_SIGNATURE}, GITHUB_BODY)
    with pytest.raises(SignatureError, match="Malformed"):
        presets.verify("github", GITHUB_SECRET, {"X-Hub-Signature-256": "sha256=zz"}, GITHUB_BODY)


def test_rotation_any_secret_matches():
    presets.verify("github", ["old", GITHUB_SECRET], {"x-hub-signature-256": GITHUB_SIGNATURE}, GITHUB_BODY)


def test_no_secret():
    with pytest.raises(SignatureError, match="No webhook secret"):
        presets.verify("github", [], {"x-hub-signature-256": GITHUB_SIGNATURE}, GITHUB_BODY)


# ---------------------------------------------------------------- Stripe
def test_stripe_documented_scheme():
    expected = _hex(STRIPE_SECRET, b"%d." % STRIPE_T + STRIPE_BODY)
    header = presets.sign("stripe", STRIPE_SECRET, STRIPE_BODY, timestamp=STRIPE_T)
    assert header == "t=%d,v1=%s" % (STRIPE_T, expected)
    presets.verify("stripe", STRIPE_SECRET, {"Stripe-Signature": header}, STRIPE_BODY, now=STRIPE_T + 10)


def test_stripe_several_v1_and_v0_ignored():
    good = _hex(STRIPE_SECRET, b"%d." % STRIPE_T + STRIPE_BODY)
    header = "t=%d,v1=%s,v1=%s,v0=%s" % (STRIPE_T, "00" * 32, good, "11" * 32)
    presets.verify("stripe", STRIPE_SECRET, {"stripe-signature": header}, STRIPE_BODY, now=STRIPE_T)
    only_v0 = "t=%d,v0=%s" % (STRIPE_T, good)
    with pytest.raises(SignatureError, match="Malformed"):
        presets.verify("stripe", STRIPE_SECRET, {"stripe-signature": only_v0}, STRIPE_BODY, now=STRIPE_T)


def test_stripe_tolerance():
    header = presets.sign("stripe", STRIPE_SECRET, STRIPE_BODY, timestamp=STRIPE_T)
    with pytest.raises(SignatureError, match="too old"):
        presets.verify("stripe", STRIPE_SECRET, {"stripe-signature": header}, STRIPE_BODY, now=STRIPE_T + 301)
    with pytest.raises(SignatureError, match="too new"):
        presets.verify("stripe", STRIPE_SECRET, {"stripe-signature": header}, STRIPE_BODY, now=STRIPE_T - 301)
    presets.verify("stripe", STRIPE_SECRET, {"stripe-signature": header}, STRIPE_BODY, now=STRIPE_T + 3600,
                   tolerance=7200)


def test_stripe_timestamp_is_signed():
    header = presets.sign("stripe", STRIPE_SECRET, STRIPE_BODY, timestamp=STRIPE_T)
    forged = header.replace("t=%d" % STRIPE_T, "t=%d" % (STRIPE_T + 1))
    with pytest.raises(SignatureError, match="does not match"):
        presets.verify("stripe", STRIPE_SECRET, {"stripe-signature": forged}, STRIPE_BODY, now=STRIPE_T)


def test_stripe_secret_used_whole_not_base64_decoded():
    # Stripe keys the HMAC with the whole "whsec_..." text, unlike Standard Webhooks.
    secret = signing.generate_secret()
    header = "t=%d,v1=%s" % (STRIPE_T, _hex(secret, b"%d." % STRIPE_T + STRIPE_BODY))
    presets.verify("stripe", secret, {"stripe-signature": header}, STRIPE_BODY, now=STRIPE_T)


# ---------------------------------------------------------------- Shopify
def test_shopify_documented_scheme():
    expected = _b64(SHOPIFY_SECRET, SHOPIFY_BODY)
    assert presets.sign("shopify", SHOPIFY_SECRET, SHOPIFY_BODY) == expected
    presets.verify("shopify", SHOPIFY_SECRET, {"X-Shopify-Hmac-Sha256": expected}, SHOPIFY_BODY)
    with pytest.raises(SignatureError, match="does not match"):
        presets.verify("shopify", SHOPIFY_SECRET, {"X-Shopify-Hmac-Sha256": expected}, SHOPIFY_BODY + b" ")
    # hex is not Shopify's encoding
    with pytest.raises(SignatureError):
        presets.verify("shopify", SHOPIFY_SECRET, {"X-Shopify-Hmac-Sha256": _hex(SHOPIFY_SECRET, SHOPIFY_BODY)},
                       SHOPIFY_BODY)


# ---------------------------------------------------------------- generic
@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_generic_header_and_encoding(encoding):
    body = b'{"a": 1}'
    value = _hex("s3cret", body) if encoding == "hex" else _b64("s3cret", body)
    presets.verify("generic", "s3cret", {"X-Signature": value}, body, header="X-Signature", encoding=encoding)
    presets.verify("generic", "s3cret", {"x-signature": "sha256=" + value}, body, header="x-signature",
                   encoding=encoding)
    with pytest.raises(SignatureError):
        presets.verify("generic", "wrong", {"X-Signature": value}, body, header="X-Signature", encoding=encoding)
    with pytest.raises(SignatureError, match="x-signature"):
        presets.verify("generic", "s3cret", {}, body, header="X-Signature", encoding=encoding)


def test_generic_without_header_name():
    with pytest.raises(SignatureError, match="No signature header"):
        presets.verify("generic", "s3cret", {"X-Signature": "00"}, b"", header="")


def test_standard_delegates_to_standard_webhooks():
    # The Standard Webhooks reference vector (tests/unit/test_signing.py).
    headers = {"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330",
               "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}
    presets.verify("standard", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", headers, '{"test": 2432232314}',
                   now=1614265330)


def test_unknown_preset():
    with pytest.raises(SignatureError, match="Unknown"):
        presets.verify("paypal", "s", {}, b"")
