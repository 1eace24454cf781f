"""Property-based tests (hypothesis) of the mapping engine on real res.partner records.

For arbitrary values of every field type (char, html, selection, integer, float, boolean,
datetime, many2one, many2many, binary):

- Odoo -> JSON -> Odoo -> JSON is stable: serializing a record, sending the payload through the
  JSON text an HTTP client would see, deserializing it into a new record and serializing that one
  gives the same payload;
- the payload has the JSON types of SPEC §5.1;
- JSON -> Odoo -> JSON returns what a client sent, for the types that have one canonical form.

Runs inside the Odoo test transaction, so it is kept small (about 50 examples per property).
"""

import base64
import datetime
import functools
import json
import re
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from odoo import Command
from odoo.tests import TransactionCase, tagged

from ..lib import values
from ..services import mapping
from .common import line as plain_line

SETTINGS = settings(
    max_examples=50,
    deadline=None,
    database=None,  # no example database written into the checkout
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
# Text a client may send: any printable Unicode except NUL (PostgreSQL text cannot hold it, a
# separate test checks it is refused cleanly) and lone surrogates (not encodable as UTF-8).
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=60)
NAME = TEXT.filter(lambda s: s.strip())
KEYS = ("name", "comment", "type", "color", "latitude", "employee", "when", "country", "tags", "blob")


@tagged("post_install", "-at_install")
class TestProperties(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        env = cls.env
        partner_model = env.ref("base.model_res_partner")
        # res.partner has no writable datetime nor plain binary field in base: add two, as a user would
        env["ir.model.fields"].create([
            {"model_id": partner_model.id, "name": "x_bj_when", "ttype": "datetime", "field_description": "When"},
            {"model_id": partner_model.id, "name": "x_bj_blob", "ttype": "binary", "field_description": "Blob"},
        ])
        cls.Partner = env["res.partner"]
        cls.countries = env["res.country"].search([], limit=20).ids
        cls.tags = env["res.partner.category"].create([{"name": "Prop tag %s" % i} for i in range(6)]).ids
        cls.types = [key for key, _label in cls.Partner._fields["type"]._description_selection(env)]

        line = functools.partial(plain_line, env, "res.partner")

        cls.config = env["bj.api.sync.config"].create({
            "name": "Property round trip",
            "request_type": "in",
            "endpoint": "property-round-trip",
            "model_id": partner_model.id,
            "auth_type": "none",
            "line_ids": [
                line("id", "id", is_record_identifier=True),
                line("name", "name"),
                line("comment", "comment"),
                line("type", "type"),
                line("color", "color"),
                line("partner_latitude", "latitude"),
                line("employee", "employee"),
                line("x_bj_when", "when"),
                line("country_id", "country"),
                line("category_id", "tags"),
                line("x_bj_blob", "blob"),
            ],
        })

    # ------------------------------------------------------------------ strategies
    @classmethod
    def odoo_values(cls):
        """ORM values of every mapped field, as anything in Odoo could have written them."""
        return st.fixed_dictionaries({
            "name": NAME,
            "comment": st.one_of(st.none(), TEXT, TEXT.map(lambda t: "<p>%s</p><ul><li>%s</li></ul>" % (t, t))),
            "type": st.sampled_from(cls.types),
            "color": st.integers(min_value=-(2**31), max_value=2**31 - 1),
            # numeric(10, 7) column: 3 integer digits
            "partner_latitude": st.floats(min_value=-999, max_value=999, allow_nan=False),
            "employee": st.booleans(),
            "x_bj_when": st.one_of(st.none(), st.datetimes(
                min_value=datetime.datetime(1000, 1, 1), max_value=datetime.datetime(9999, 12, 31, 23, 59, 59),
            ).map(lambda d: d.replace(microsecond=0))),
            "country_id": st.one_of(st.none(), st.sampled_from(cls.countries)),
            "category_id": st.lists(st.sampled_from(cls.tags), unique=True, max_size=4).map(
                lambda ids: [Command.set(ids)]),
            "x_bj_blob": st.one_of(st.none(), st.binary(min_size=1, max_size=200).map(base64.b64encode)),
        })

    @classmethod
    def json_payloads(cls):
        """Payloads a client may send, in the canonical JSON form of each type."""
        return st.fixed_dictionaries({
            "name": NAME.map(str.strip).filter(bool),
            "type": st.sampled_from(cls.types),
            "color": st.integers(min_value=-(2**31), max_value=2**31 - 1),
            "latitude": st.integers(min_value=-999 * 10**7, max_value=999 * 10**7).map(lambda n: n / 10**7),
            "employee": st.booleans(),
            "when": st.one_of(st.none(), st.datetimes(
                min_value=datetime.datetime(1000, 1, 1), max_value=datetime.datetime(9999, 12, 31, 23, 59, 59),
            ).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ"))),
            "country": st.one_of(st.none(), st.sampled_from(cls.countries)),
            "tags": st.lists(st.sampled_from(cls.tags), unique=True, max_size=4).map(sorted),
            "blob": st.one_of(st.none(), st.binary(min_size=1, max_size=200).map(
                lambda b: base64.b64encode(b).decode())),
        })

    # ------------------------------------------------------------------ helpers
    def through_http(self, payload):
        """The payload as the other side reads it: our JSON text, parsed."""
        return json.loads(values.dumps(payload))

    def create_from(self, payload):
        vals = mapping.deserialize(self.config, payload)
        return self.Partner.create(vals)

    def assertJsonTypes(self, payload):
        self.assertEqual(set(payload), {"id", *KEYS})
        self.assertIsInstance(payload["id"], int)
        self.assertIsInstance(payload["name"], str)
        self.assertIsInstance(payload["comment"], (str, type(None)))
        self.assertIn(payload["type"], self.types)
        self.assertIs(type(payload["color"]), int)
        self.assertIsInstance(payload["latitude"], (int, float))
        self.assertIsInstance(payload["employee"], bool)
        if payload["when"] is not None:
            self.assertRegex(payload["when"], DATETIME_RE)
        self.assertIsInstance(payload["country"], (int, type(None)))
        self.assertIsInstance(payload["tags"], list)
        self.assertTrue(all(type(i) is int for i in payload["tags"]))
        if payload["blob"] is not None:
            self.assertEqual(base64.b64encode(base64.b64decode(payload["blob"], validate=True)).decode(),
                             payload["blob"])

    # ------------------------------------------------------------------ properties
    def test_odoo_json_odoo_is_stable(self):
        @SETTINGS
        @given(self.odoo_values())
        def check(vals):
            ran.append(1)
            with self.env.cr.savepoint():
                record = self.Partner.create(vals)
                payload = mapping.serialize(self.config, record)[0]
                self.assertJsonTypes(payload)
                self.assertEqual(payload["id"], record.id)
                self.assertEqual(payload["color"], vals["color"])
                self.assertEqual(payload["employee"], vals["employee"])
                self.assertEqual(payload["country"], vals["country_id"] or None)
                copy = self.create_from(self.through_http(payload))
                again = mapping.serialize(self.config, copy)[0]
                self.assertEqual(dict(again, id=None), dict(payload, id=None))

        ran = []
        check()
        self.assertGreaterEqual(len(ran), SETTINGS.max_examples)

    def test_json_odoo_json_returns_what_was_sent(self):
        @SETTINGS
        @given(self.json_payloads())
        def check(payload):
            ran.append(1)
            with self.env.cr.savepoint():
                record = self.create_from(self.through_http(payload))
                back = mapping.serialize(self.config, record)[0]
                self.assertJsonTypes(back)
                expected = dict(payload, id=record.id, comment=None)
                back["tags"] = sorted(back["tags"])
                self.assertEqual(back, expected)

        ran = []
        check()
        self.assertGreaterEqual(len(ran), SETTINGS.max_examples)

    def test_datetimes_with_offsets_are_stored_as_utc(self):
        @SETTINGS
        @given(
            st.datetimes(min_value=datetime.datetime(1900, 1, 2), max_value=datetime.datetime(9999, 12, 30)),
            st.integers(min_value=-14 * 60, max_value=14 * 60),
        )
        def check(moment, offset_minutes):
            ran.append(1)
            moment = moment.replace(microsecond=0)
            tz = datetime.timezone(datetime.timedelta(minutes=offset_minutes))
            sent = moment.replace(tzinfo=tz).isoformat()
            utc = (moment - datetime.timedelta(minutes=offset_minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
            with self.env.cr.savepoint():
                record = self.create_from({"name": "Offset", "when": sent})
                self.assertEqual(mapping.serialize(self.config, record)[0]["when"], utc)

        ran = []
        check()
        self.assertGreaterEqual(len(ran), SETTINGS.max_examples)

    def test_wrong_json_types_are_refused_naming_the_line(self):
        wrong = {
            "color": st.one_of(st.text(string.ascii_letters, min_size=1), st.lists(st.integers(), min_size=1),
                               st.floats(allow_nan=False).filter(lambda f: f != int(f) if abs(f) < 1e15 else True)),
            "employee": st.one_of(st.lists(st.booleans(), min_size=1), st.dictionaries(st.text(), st.integers(),
                                                                                        min_size=1)),
            "when": st.one_of(st.text(string.ascii_letters, min_size=1), st.integers(), st.lists(st.text())),
            "tags": st.one_of(st.text(string.ascii_letters, min_size=1), st.lists(st.text(string.ascii_letters,
                                                                                          min_size=1), min_size=1)),
            "blob": st.one_of(st.integers(), st.lists(st.integers(), min_size=1)),
        }

        @SETTINGS
        @given(st.sampled_from(sorted(wrong)).flatmap(lambda key: st.tuples(st.just(key), wrong[key])))
        def check(case):
            ran.append(1)
            key, value = case
            from ..lib.errors import SyncError  # noqa: PLC0415

            line = self.config.line_ids.filtered(lambda line: line.api_key == key)
            with self.assertRaises(SyncError) as caught:
                mapping.deserialize(self.config, {"name": "Wrong", key: value})
            self.assertEqual((caught.exception.status, caught.exception.line_id), (400, line.id), caught.exception)

        ran = []
        check()
        self.assertGreaterEqual(len(ran), SETTINGS.max_examples)
