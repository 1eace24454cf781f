import pytest
from lib import crypto
from lib.crypto import CryptoError, SecretBox


def test_round_trip():
    box = SecretBox(crypto.generate_key())
    token = box.encrypt("s3cret-api-key")
    assert token != "s3cret-api-key"
    assert "s3cret-api-key" not in token
    assert box.decrypt(token) == "s3cret-api-key"


def test_non_ascii_round_trip():
    box = SecretBox([crypto.generate_key()])
    assert box.decrypt(box.encrypt("clé ✓")) == "clé ✓"


def test_empty_values_pass_through():
    box = SecretBox(crypto.generate_key())
    assert box.encrypt("") == ""
    assert box.encrypt(None) is None
    assert box.decrypt("") == ""


def test_ciphertext_is_randomised():
    box = SecretBox(crypto.generate_key())
    assert box.encrypt("same") != box.encrypt("same")


def test_is_encrypted():
    box = SecretBox(crypto.generate_key())
    assert crypto.is_encrypted(box.encrypt("x"))
    assert box.is_encrypted(box.encrypt("x"))
    assert not crypto.is_encrypted("plain value")
    assert not crypto.is_encrypted("")
    assert not crypto.is_encrypted(None)


def test_rotation():
    old, new = crypto.generate_key(), crypto.generate_key()
    token = SecretBox(old).encrypt("secret")
    both = SecretBox(f" {new} , {old} ,, ")
    assert both.decrypt(token) == "secret"
    rotated = both.rotate(token)
    assert SecretBox(new).decrypt(rotated) == "secret"
    with pytest.raises(CryptoError):
        SecretBox(old).decrypt(rotated)


def test_list_of_keys_first_encrypts():
    old, new = crypto.generate_key(), crypto.generate_key()
    token = SecretBox([new, old]).encrypt("secret")
    assert SecretBox(new).decrypt(token) == "secret"


def test_wrong_key_has_clear_message():
    token = SecretBox(crypto.generate_key()).encrypt("secret")
    with pytest.raises(CryptoError) as info:
        SecretBox(crypto.generate_key()).decrypt(token)
    assert "encryption key does not match" in str(info.value)
    assert "bj_api_sync_encryption_key" in str(info.value)


def test_garbage_token_is_crypto_error():
    with pytest.raises(CryptoError):
        SecretBox(crypto.generate_key()).decrypt("not a token")


@pytest.mark.parametrize("keys", ["", "  , ,", [], None, ["", " "]])
def test_missing_key(keys):
    with pytest.raises(CryptoError) as info:
        SecretBox(keys)
    assert str(info.value).startswith("Invalid bj_api_sync encryption key")


def test_malformed_key_is_not_echoed():
    bad = "this-is-not-a-fernet-key-ABCDEF"
    with pytest.raises(CryptoError) as info:
        SecretBox([crypto.generate_key(), bad])
    message = str(info.value)
    assert message.startswith("Invalid bj_api_sync encryption key: ")
    assert bad not in message
    assert isinstance(info.value, ValueError)
    assert info.value.__cause__ is None


def test_box_for_shares_one_box_per_key_list_and_memoises_decryption():
    keys = crypto.generate_key()
    box = crypto.box_for(keys)
    assert crypto.box_for(keys) is box
    assert crypto.box_for(crypto.generate_key()) is not box
    token = box.encrypt("s3cret")
    assert box.decrypt(token) == "s3cret"
    assert box._clear == {token: "s3cret"}
    assert box.decrypt(token) == "s3cret"
    # a token of another key is still refused, memo or not
    with pytest.raises(crypto.CryptoError):
        box.decrypt(crypto.SecretBox(crypto.generate_key()).encrypt("other"))
    assert token in box._clear and len(box._clear) == 1
