import base64
import io
import logging
import re
import time
from contextlib import contextmanager
from datetime import date, datetime, timedelta

from PIL import Image

from odoo import Command, fields
from odoo.exceptions import ValidationError
from odoo.tests import tagged

from ..lib import values
from ..lib.errors import SyncError
from ..services import mapping
from .common import BjCase

_logger = logging.getLogger(__name__)

P = "res.partner"
DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def _png():
    buffer = io.BytesIO()
    Image.new("RGB", (3, 2), (200, 30, 30)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


class MappingCase(BjCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.country_config = cls._config(
            name="Country",
            model_id=cls.env.ref("base.model_res_country").id,
            line_ids=[
                cls._line("res.country", "code", "code", is_record_identifier=True),
                cls._line("res.country", "name", "name"),
            ],
        )
        cls.tag_config = cls._config(
            name="Tag",
            model_id=cls.env.ref("base.model_res_partner_category").id,
            line_ids=[
                cls._line("res.partner.category", "name", "name", is_record_identifier=True),
                cls._line("res.partner.category", "color", "color"),
            ],
        )
        cls.contact_config = cls._config(
            name="Contact",
            line_ids=[
                cls._line(P, "ref", "ref", is_record_identifier=True),
                cls._line(P, "name", "name", required=True),
                cls._line(P, "email", "email"),
            ],
        )
        # Every plain type res.partner offers.
        cls.plain_config = cls._config(
            name="Partner plain",
            line_ids=[
                cls._line(P, "id", "id", is_record_identifier=True, sequence=1),
                cls._line(P, "name", "name", sequence=2),
                cls._line(P, "comment", "comment", sequence=3),
                cls._line(P, "type", "type", sequence=4),
                cls._line(P, "color", "color", sequence=5),
                cls._line(P, "partner_latitude", "latitude", sequence=6),
                cls._line(P, "active", "active", sequence=7),
                cls._line(P, "create_date", "created_at", sequence=8),
                cls._line(P, "write_date", "updated_at", sequence=9),
                cls._line(P, "country_id", "country_id", sequence=10),
                cls._line(P, "category_id", "category_ids", sequence=11),
                cls._line(P, "child_ids", "child_ids", sequence=12, direction="out"),
                cls._line(P, "image_1920", "image", sequence=13),
            ],
        )
        cls.nested_config = cls._config(
            name="Partner nested",
            line_ids=[
                cls._line(P, "ref", "ref", is_record_identifier=True, sequence=1),
                cls._line(P, "name", "name", sequence=2),
                cls._line(P, "country_id", "country", value_type="relational",
                          mapping_config_id=cls.country_config.id, sequence=3),
                cls._line(P, "category_id", "tags", value_type="relational",
                          mapping_config_id=cls.tag_config.id, sequence=4),
                cls._line(P, "child_ids", "contacts", value_type="relational",
                          mapping_config_id=cls.contact_config.id, sequence=5),
            ],
        )
        cls.be = cls.env.ref("base.be")
        cls.fr = cls.env.ref("base.fr")
        Tag = cls.env["res.partner.category"]
        cls.tag_a, cls.tag_b, cls.tag_c = (
            Tag.create({"name": name, "color": 3}) for name in ("Tag A", "Tag B", "Tag C")
        )

    def _nested_line(self, field, key, mapping_config):
        return self._line(P, field, key, value_type="relational", mapping_config_id=mapping_config.id)

    @contextmanager
    def assertSyncError(self, status, line=None, message=None):
        """A SyncError with this status (and line, and message part) must be raised."""
        with self.assertRaises(SyncError) as cm:
            yield cm
        error = cm.exception
        self.assertEqual(error.status, status, error.message)
        if line is not None:
            self.assertEqual(error.line_id, line.id, error.message)
        if message is not None:
            self.assertIn(message, error.message)


@tagged("post_install", "-at_install")
class TestMappingSerialize(MappingCase):
    def test_every_plain_type(self):
        image = _png()
        partner = self.env[P].create({
            "name": "Ada",
            "comment": "<p>Hello</p>",
            "type": "invoice",
            "color": 4,
            "partner_latitude": 50.8503,
            "country_id": self.be.id,
            "category_id": [Command.set([self.tag_a.id, self.tag_b.id])],
            "child_ids": [Command.create({"name": "Kid"})],
            "image_1920": image,
        })
        [payload] = mapping.serialize(self.plain_config, partner)
        self.assertEqual(list(payload), [
            "id", "name", "comment", "type", "color", "latitude", "active", "created_at", "updated_at",
            "country_id", "category_ids", "child_ids", "image",
        ])
        self.assertEqual(payload["id"], partner.id)
        self.assertEqual(payload["name"], "Ada")
        self.assertEqual(payload["comment"], "<p>Hello</p>")
        self.assertEqual(payload["type"], "invoice")
        self.assertEqual(payload["color"], 4)
        self.assertEqual(payload["latitude"], 50.8503)
        self.assertIs(payload["active"], True)
        self.assertRegex(payload["created_at"], DATETIME_RE)
        self.assertEqual(payload["updated_at"], values.to_json("datetime", partner.write_date))
        self.assertEqual(payload["country_id"], self.be.id)
        self.assertEqual(sorted(payload["category_ids"]), sorted([self.tag_a.id, self.tag_b.id]))
        self.assertEqual(payload["child_ids"], partner.child_ids.ids)
        self.assertEqual(base64.b64decode(payload["image"])[:8], b"\x89PNG\r\n\x1a\n")

    def test_empty_values(self):
        partner = self.env[P].create({"name": "Empty", "active": False, "type": False})
        [payload] = mapping.serialize(self.plain_config, partner)
        for key in ("comment", "type", "country_id", "image"):
            self.assertIsNone(payload[key], key)
        # numbers are never "empty" in Odoo: 0 stays 0
        self.assertEqual((payload["color"], payload["latitude"]), (0, 0.0))
        self.assertIs(payload["active"], False)
        self.assertEqual((payload["category_ids"], payload["child_ids"]), ([], []))

    def test_other_types(self):
        """date (res.currency.rate), text (res.groups), datetime written by us (mail.message)."""
        rate_config = self._config(
            model_id=self.env.ref("base.model_res_currency_rate").id,
            line_ids=[
                self._line("res.currency.rate", "id", "id", is_record_identifier=True),
                self._line("res.currency.rate", "name", "date"),
                self._line("res.currency.rate", "rate", "rate"),
                self._line("res.currency.rate", "currency_id", "currency_id"),
            ],
        )
        usd = self.env.ref("base.USD")
        rate = self.env["res.currency.rate"].create({"name": "2024-02-29", "rate": 1.25, "currency_id": usd.id})
        self.assertEqual(
            mapping.serialize(rate_config, rate),
            [{"id": rate.id, "date": "2024-02-29", "rate": 1.25, "currency_id": usd.id}],
        )
        group_config = self._config(
            model_id=self.env.ref("base.model_res_groups").id,
            line_ids=[
                self._line("res.groups", "id", "id", is_record_identifier=True),
                self._line("res.groups", "comment", "comment"),
            ],
        )
        group = self.env["res.groups"].create({"name": "Mapped", "comment": "line 1\nline 2"})
        self.assertEqual(mapping.serialize(group_config, group)[0]["comment"], "line 1\nline 2")
        message_config = self._config(
            model_id=self.env.ref("mail.model_mail_message").id,
            line_ids=[
                self._line("mail.message", "id", "id", is_record_identifier=True),
                self._line("mail.message", "date", "date"),
            ],
        )
        message = self.env["mail.message"].create({"body": "x", "date": datetime(2024, 5, 1, 10, 0, 5)})
        self.assertEqual(mapping.serialize(message_config, message)[0]["date"], "2024-05-01T10:00:05Z")

    def test_monetary_through_values(self):
        """No model of base/mail has a monetary field: the conversion is lib.values' float path."""
        self.assertFalse(self.env["ir.model.fields"].search_count([("ttype", "=", "monetary"), ("store", "=", True)]))
        self.assertEqual(values.to_json("monetary", 12.5), 12.5)
        self.assertIsNone(values.to_json("monetary", False))
        self.assertEqual(values.from_json("monetary", "12.50"), 12.5)
        with self.assertRaises(SyncError):
            values.from_json("monetary", True, line_id=7)

    def test_nested(self):
        partner = self.env[P].create({
            "name": "Acme", "ref": "ACME", "country_id": self.be.id,
            "category_id": [Command.set([self.tag_b.id, self.tag_a.id])],
            "child_ids": [Command.create({"name": "Bob", "ref": "C1", "email": "bob@example.com"})],
        })
        lonely = self.env[P].create({"name": "Lonely"})
        self.env.invalidate_all()
        acme, alone = mapping.serialize(self.nested_config, partner | lonely)
        self.assertEqual(acme, {
            "ref": "ACME",
            "name": "Acme",
            "country": {"code": "BE", "name": "Belgium"},
            "tags": [{"name": "Tag A", "color": 3}, {"name": "Tag B", "color": 3}],
            "contacts": [{"ref": "C1", "name": "Bob", "email": "bob@example.com"}],
        })
        self.assertEqual(alone, {"ref": None, "name": "Lonely", "country": None, "tags": [], "contacts": []})
        self.assertEqual(mapping.serialize(self.nested_config, self.env[P]), [])

    def test_direction(self):
        self._line_of(self.plain_config, "comment").direction = "in"
        partner = self.env[P].create({"name": "Dir", "comment": "<p>x</p>"})
        [payload] = mapping.serialize(self.plain_config, partner)
        self.assertNotIn("comment", payload)
        self.assertIn("child_ids", payload)  # direction out
        vals = mapping.deserialize(self.plain_config, {"comment": "<p>y</p>", "child_ids": [1]})
        self.assertEqual(vals, {"comment": "<p>y</p>"})

    def _query_count(self, func):
        self.env.flush_all()
        self.env.invalidate_all()
        before = self.env.cr.sql_log_count
        result = func()
        return self.env.cr.sql_log_count - before, result

    def _partners(self, count, children=True):
        vals = []
        for index in range(count):
            partner = {
                "name": "Bulk %05d" % index,
                "ref": "B%05d" % index,
                "country_id": (self.be if index % 2 else self.fr).id,
                "category_id": [Command.set([self.tag_a.id, (self.tag_b if index % 2 else self.tag_c).id])],
            }
            if children:
                partner["child_ids"] = [Command.create({"name": "Child %05d" % index, "ref": "K%05d" % index})]
            vals.append(partner)
        return self.env[P].with_context(tracking_disable=True).create(vals).with_context(tracking_disable=False)

    def test_query_count_bounded(self):
        partners = self._partners(100)
        for config in (self.plain_config, self.nested_config):
            with self.subTest(config=config.name):
                # warm the configuration's plan (its lines are read once per call)
                mapping.serialize(config, partners[:1])
                one, payloads = self._query_count(lambda config=config: mapping.serialize(config, partners[:1]))
                self.assertEqual(len(payloads), 1)
                with self.assertQueryCount(one):
                    self.env.invalidate_all()
                    payloads = mapping.serialize(config, partners)
                self.assertEqual(len(payloads), 100)
                hundred, _payloads = self._query_count(lambda config=config: mapping.serialize(config, partners))
                self.assertEqual(one, hundred)
                _logger.info(
                    "bj_api_sync serialize %s: 1 record %s queries, 100 records %s queries", config.name, one, hundred
                )
        payload = mapping.serialize(self.nested_config, partners[-1])[0]
        self.assertEqual(payload["contacts"], [{"ref": "K00099", "name": "Child 00099", "email": None}])
        self.assertEqual(payload["country"]["code"], "BE")

    def _bulk_partners(self, count):
        """``count`` partners inserted in SQL: the ORM would spend most of the test creating them."""
        self.env.flush_all()
        self.env.cr.execute(
            """
            INSERT INTO res_partner (name, complete_name, ref, country_id, active, type, create_uid, write_uid,
                                     create_date, write_date)
            SELECT 'Bulk ' || n, 'Bulk ' || n, 'B' || n, CASE WHEN n %% 2 = 1 THEN %s ELSE %s END, true,
                   'contact', %s, %s, now() at time zone 'UTC', now() at time zone 'UTC'
              FROM generate_series(0, %s - 1) AS n
            RETURNING id
            """,
            [self.be.id, self.fr.id, self.env.uid, self.env.uid, count],
        )
        ids = sorted(row[0] for row in self.env.cr.fetchall())
        self.env.cr.execute(
            """
            INSERT INTO res_partner_res_partner_category_rel (partner_id, category_id)
            SELECT id, %s FROM unnest(%s) AS id
            UNION ALL
            SELECT id, CASE WHEN id %% 2 = 1 THEN %s ELSE %s END FROM unnest(%s) AS id
            """,
            [self.tag_a.id, ids, self.tag_b.id, self.tag_c.id, ids],
        )
        self.env.invalidate_all()
        return self.env[P].browse(ids)

    def test_query_count_10000(self):
        partners = self._bulk_partners(10000)
        start = time.time()
        count, payloads = self._query_count(lambda: mapping.serialize(self.nested_config, partners))
        elapsed = time.time() - start
        one, [first] = self._query_count(lambda: mapping.serialize(self.nested_config, partners[:1]))
        self.assertEqual(len(payloads), 10000)
        self.assertEqual(payloads[0], first)
        self.assertEqual(payloads[9999]["name"], partners[9999].name)
        self.assertEqual(
            sorted(tag["name"] for tag in payloads[1]["tags"]), sorted(partners[1].category_id.mapped("name"))
        )
        _logger.info(
            "bj_api_sync serialize 10000 records (nested): %s queries (1 record: %s), %.2fs", count, one, elapsed
        )
        # fetches are single queries; the ORM's prefetch batches of 1000 could add a few
        self.assertLessEqual(count, one + 30)
        start = time.time()
        count, payloads = self._query_count(lambda: mapping.serialize(self.plain_config, partners))
        elapsed = time.time() - start
        one, _payloads = self._query_count(lambda: mapping.serialize(self.plain_config, partners[:1]))
        _logger.info(
            "bj_api_sync serialize 10000 records (plain): %s queries (1 record: %s), %.2fs", count, one, elapsed
        )
        self.assertLessEqual(count, one + 30)


@tagged("post_install", "-at_install")
class TestMappingDeserialize(MappingCase):
    def test_round_trip_partner(self):
        image = _png()
        source = self.env[P].create({
            "name": "Round", "comment": "<p>Trip</p>", "type": "delivery", "color": 9,
            "partner_latitude": -12.5, "country_id": self.fr.id,
            "category_id": [Command.set([self.tag_c.id])], "image_1920": image,
        })
        [payload] = mapping.serialize(self.plain_config, source)
        vals = mapping.deserialize(self.plain_config, dict(payload))
        for key in ("id", "create_date", "write_date", "child_ids"):
            self.assertNotIn(key, vals)
        copy = self.env[P].create(vals)
        [again] = mapping.serialize(self.plain_config, copy)
        for key in ("id", "created_at", "updated_at"):
            payload.pop(key)
            again.pop(key)
        self.assertEqual(again, payload)
        self.assertEqual(vals["category_id"], [(6, 0, [self.tag_c.id])])

    def test_round_trip_other_types(self):
        message_config = self._config(
            model_id=self.env.ref("mail.model_mail_message").id,
            line_ids=[
                self._line("mail.message", "id", "id", is_record_identifier=True),
                self._line("mail.message", "body", "body"),
                self._line("mail.message", "date", "date"),
            ],
        )
        for text, expected in (
            ("2024-05-01T12:00:00+02:00", datetime(2024, 5, 1, 10, 0)),
            ("2024-05-01T10:00:00Z", datetime(2024, 5, 1, 10, 0)),
            ("2024-05-01T05:30:00-04:30", datetime(2024, 5, 1, 10, 0)),
            ("2024-05-01 10:00:00", datetime(2024, 5, 1, 10, 0)),
            ("2024-05-01T10:00:00.123456", datetime(2024, 5, 1, 10, 0)),
        ):
            with self.subTest(text=text):
                record, created = mapping.upsert(message_config, {"body": "<p>b</p>", "date": text})
                self.assertTrue(created)
                self.assertEqual(record.date, expected)
                self.assertEqual(mapping.serialize(message_config, record)[0]["date"], "2024-05-01T10:00:00Z")
        rate_config = self._config(
            model_id=self.env.ref("base.model_res_currency_rate").id,
            line_ids=[
                self._line("res.currency.rate", "id", "id", is_record_identifier=True),
                self._line("res.currency.rate", "name", "date"),
                self._line("res.currency.rate", "rate", "rate"),
                self._line("res.currency.rate", "currency_id", "currency_id"),
            ],
        )
        usd = self.env.ref("base.USD")
        rate, _created = mapping.upsert(rate_config, {"date": "2023-12-31", "rate": 2, "currency_id": usd.id})
        self.assertEqual((rate.name, rate.rate, rate.currency_id), (date(2023, 12, 31), 2.0, usd))
        group_config = self._config(
            model_id=self.env.ref("base.model_res_groups").id,
            line_ids=[
                self._line("res.groups", "id", "id", is_record_identifier=True),
                self._line("res.groups", "name", "name"),
                self._line("res.groups", "comment", "comment"),
            ],
        )
        group, _created = mapping.upsert(group_config, {"name": "G", "comment": "multi\nline"})
        self.assertEqual(group.comment, "multi\nline")
        self.assertEqual(mapping.serialize(group_config, group)[0]["comment"], "multi\nline")

    def test_type_errors_name_the_line(self):
        config = self.plain_config
        for key, bad, part in (
            ("name", 12, "expected a string"),
            ("type", "alien", "expected one of"),
            ("color", "blue", "expected an integer"),
            ("color", True, "expected an integer"),
            ("latitude", "north", "expected a number"),
            ("active", "yes", "expected a boolean"),
            ("country_id", "BE", "record id"),
            ("country_id", 999999999, "no res.country record with id 999999999"),
            ("category_ids", [self.tag_a.id, "x"], "at position 1"),
            ("image", "not base64!", "base64"),
        ):
            with self.subTest(key=key, bad=bad), self.assertSyncError(400, self._line_of(config, key), part) as cm:
                mapping.deserialize(config, {"name": "ok", key: bad})
            self.assertIn("'%s'" % key, cm.exception.message)
        with self.assertSyncError(400, message="Expected a JSON object"):
            mapping.deserialize(config, [1, 2])

    def test_null_empties_and_absent_keeps(self):
        partner = self.env[P].create({"name": "Keep", "comment": "<p>c</p>", "country_id": self.be.id})
        vals = mapping.deserialize(self.plain_config, {"comment": None, "country_id": None}, partner)
        self.assertEqual(vals, {"comment": False, "country_id": False})
        partner.write(vals)
        self.assertFalse(partner.comment or partner.country_id)
        self.assertEqual(partner.name, "Keep")

    def test_id_never_written_unknown_keys_ignored(self):
        vals = mapping.deserialize(self.plain_config, {"id": 42, "name": "N", "surprise": {"a": 1}})
        self.assertEqual(vals, {"name": "N"})

    def test_required_present_on_create_never_emptied(self):
        line = self._line_of(self.contact_config, "name")
        with self.assertSyncError(400, line, "Missing required key 'name'"):
            mapping.deserialize(self.contact_config, {"ref": "R1"})
        with self.assertSyncError(400, line, "cannot be null"):
            mapping.deserialize(self.contact_config, {"ref": "R1", "name": None})
        with self.assertSyncError(400, line, "cannot be empty"):
            mapping.deserialize(self.contact_config, {"ref": "R1", "name": " "})
        existing = self.env[P].create({"name": "Here", "ref": "R1"})
        # On update a required key may be left out...
        self.assertEqual(mapping.deserialize(self.contact_config, {"email": "a@b.c"}, existing), {"email": "a@b.c"})
        self.assertEqual(
            mapping.deserialize(self.contact_config, {"email": "a@b.c"}, existing, partial=True), {"email": "a@b.c"}
        )
        # ...but not emptied, partial (PUT/PATCH) or not (upsert).
        for partial in (True, False):
            for empty, part in ((None, "Required key 'name' cannot be null."), ("", "Required key 'name' cannot be empty.")):
                with self.subTest(partial=partial, empty=empty), self.assertSyncError(400, line, part):
                    mapping.deserialize(self.contact_config, {"name": empty}, existing, partial=partial)
        with self.assertSyncError(400, line, "cannot be null"):
            mapping.upsert(self.contact_config, {"ref": "R1", "name": None})
        self.assertEqual(existing.name, "Here")

    def test_relational_scalar_lookup(self):
        vals = mapping.deserialize(self.nested_config, {"country": "BE", "tags": ["Tag A", "Tag C"]})
        self.assertEqual(vals["country_id"], self.be.id)
        self.assertEqual(vals["category_id"], [(6, 0, [self.tag_a.id, self.tag_c.id])])
        self.assertEqual(mapping.deserialize(self.nested_config, {"country": None})["country_id"], False)

    def test_relational_unknown_scalar(self):
        country = self._line_of(self.nested_config, "country")
        with self.assertSyncError(400, country, "no res.country record with code 'ZZ'"):
            mapping.deserialize(self.nested_config, {"country": "ZZ"})
        with self.assertSyncError(400, self._line_of(self.nested_config, "tags"), "Tag Z"):
            mapping.deserialize(self.nested_config, {"tags": ["Tag A", "Tag Z"]})
        with self.assertSyncError(400, self._line_of(self.nested_config, "tags"), "expected an array"):
            mapping.deserialize(self.nested_config, {"tags": "Tag A"})
        with self.assertSyncError(400, self._line_of(self.nested_config, "country"), "got an array"):
            mapping.deserialize(self.nested_config, {"country": ["BE"]})

    def test_relational_object_lookup_update_and_create(self):
        vals = mapping.deserialize(
            self.nested_config,
            {
                "country": {"code": "BE", "name": "Belgium (updated)"},
                "tags": [{"name": "Tag B", "color": 7}, {"name": "Brand new", "color": 2}],
            },
        )
        self.assertEqual(vals["country_id"], self.be.id)
        self.assertEqual(self.be.name, "Belgium (updated)")
        self.assertEqual(self.tag_b.color, 7)
        new_tag = self.env["res.partner.category"].search([("name", "=", "Brand new")])
        self.assertEqual(new_tag.color, 2)
        self.assertEqual(vals["category_id"], [(6, 0, [self.tag_b.id, new_tag.id])])

    def test_relational_lookup_ambiguous(self):
        self.env["res.partner.category"].create({"name": "Tag A"})
        with self.assertSyncError(409, self._line_of(self.nested_config, "tags"), "2 res.partner.category records"):
            mapping.deserialize(self.nested_config, {"tags": ["Tag A"]})

    def test_relational_create_checks_child_required(self):
        with self.assertSyncError(400, self._line_of(self.contact_config, "name"), "Missing required key 'name'"):
            mapping.deserialize(self.nested_config, {"contacts": [{"ref": "NEW"}]})

    def test_unknown_id_in_object_refused(self):
        country_by_id = self._config(
            model_id=self.env.ref("base.model_res_country").id,
            line_ids=[
                self._line("res.country", "id", "id", is_record_identifier=True),
                self._line("res.country", "name", "name"),
            ],
        )
        config = self._config(
            line_ids=[
                self._line(P, "id", "id", is_record_identifier=True),
                self._line(P, "country_id", "country", value_type="relational", mapping_config_id=country_by_id.id),
            ]
        )
        self.assertEqual(mapping.deserialize(config, {"country": {"id": self.fr.id}}), {"country_id": self.fr.id})
        self.assertEqual(mapping.deserialize(config, {"country": self.fr.id}), {"country_id": self.fr.id})
        with self.assertSyncError(400, self._line_of(config, "country"), "no res.country record with id 99999999"):
            mapping.deserialize(config, {"country": {"id": 99999999, "name": "Atlantis"}})

    def test_one2many_update_vs_create(self):
        partner = self.env[P].create({
            "name": "Parent", "ref": "PARENT",
            "child_ids": [
                Command.create({"name": "Old one", "ref": "C1"}),
                Command.create({"name": "Untouched", "ref": "C3"}),
            ],
        })
        old, untouched = partner.child_ids.sorted("ref")
        payload = {
            "contacts": [{"ref": "C1", "name": "Renamed"}, {"ref": "C2", "name": "Created", "email": "c2@example.com"}]
        }
        vals = mapping.deserialize(self.nested_config, payload, partner)
        self.assertEqual(vals["child_ids"], [
            Command.update(old.id, {"ref": "C1", "name": "Renamed"}),
            Command.create({"ref": "C2", "name": "Created", "email": "c2@example.com"}),
        ])
        partner.write(vals)
        self.assertEqual(old.name, "Renamed")
        self.assertEqual(len(partner.child_ids), 3)
        self.assertEqual(partner.child_ids.filtered(lambda c: c.ref == "C2").email, "c2@example.com")
        self.assertEqual(untouched.parent_id, partner)
        # on create, every child is created
        vals = mapping.deserialize(self.nested_config, {"name": "Other", "contacts": [{"ref": "C1", "name": "Twin"}]})
        self.assertEqual(vals["child_ids"], [Command.create({"ref": "C1", "name": "Twin"})])

    def test_many2many_replace(self):
        partner = self.env[P].create(
            {"name": "Tagged", "ref": "TAGGED2", "category_id": [Command.set([self.tag_a.id, self.tag_b.id])]}
        )
        record, created = mapping.upsert(self.nested_config, {"ref": "TAGGED2", "tags": ["Tag B", {"name": "Tag C"}]})
        self.assertFalse(created)
        self.assertEqual(record, partner)
        self.assertEqual(partner.category_id, self.tag_b | self.tag_c)
        mapping.upsert(self.nested_config, {"ref": "TAGGED2", "tags": []})
        self.assertFalse(partner.category_id)

    def test_self_reference_and_cycle_refused(self):
        config = self._config(line_ids=[self._line(P, "ref", "ref", is_record_identifier=True)])
        with self.assertRaises(ValidationError) as cm:
            config.write({"line_ids": [self._nested_line("parent_id", "parent", config)]})
        self.assertIn("cannot be its own Mapping Model", str(cm.exception))
        other = self._config(line_ids=[self._line(P, "ref", "ref", is_record_identifier=True)])
        config.write({"line_ids": [self._nested_line("parent_id", "parent", other)]})
        other.write({"line_ids": [self._nested_line("child_ids", "children", config)]})
        back = self._line_of(other, "children")
        partner = self.env[P].create({"name": "Loop", "ref": "L"})
        with self.assertSyncError(400, back, "cycle"):
            mapping.serialize(config, partner)
        with self.assertSyncError(400, back, "cycle"):
            mapping.deserialize(config, {"ref": "L"})
        # one direction only: no cycle
        back.direction = "in"
        self.assertEqual(mapping.serialize(config, partner), [{"ref": "L", "parent": None}])

    def _chain(self, levels):
        """A config whose Mapping Models nest ``levels`` deep through parent_id."""
        child = self._config(
            name="Level %s" % levels, line_ids=[self._line(P, "ref", "ref", is_record_identifier=True)]
        )
        for level in range(levels - 1, -1, -1):
            child = self._config(
                name="Level %s" % level,
                line_ids=[
                    self._line(P, "ref", "ref", is_record_identifier=True),
                    self._line(P, "parent_id", "parent", value_type="relational", mapping_config_id=child.id),
                ],
            )
        return child

    def test_depth_limit(self):
        partner = self.env[P].create({"name": "Deep", "ref": "D0"})
        ok = self._chain(mapping.MAX_DEPTH)
        self.assertEqual(mapping.serialize(ok, partner), [{"ref": "D0", "parent": None}])
        self.assertEqual(mapping.deserialize(ok, {"ref": "D0"}), {"ref": "D0"})
        too_deep = self._chain(mapping.MAX_DEPTH + 1)
        with self.assertSyncError(400, message="nested deeper than 8 levels") as cm:
            mapping.serialize(too_deep, partner)
        self.assertTrue(cm.exception.line_id)
        with self.assertSyncError(400, message="nested deeper than 8 levels"):
            mapping.upsert(too_deep, {"ref": "D0"})


@tagged("post_install", "-at_install")
class TestMappingLookup(MappingCase):
    def test_identifier_helpers(self):
        self.assertEqual(mapping.identifier_key(self.nested_config), "ref")
        self.assertEqual(mapping.identifier_value(self.nested_config, {"ref": "X", "name": "n"}), "X")
        self.assertIsNone(mapping.identifier_value(self.nested_config, {"name": "n"}))
        self.assertIsNone(mapping.identifier_key(self._config()))

    def test_find_records(self):
        partner = self.env[P].create({"name": "Findme", "ref": "F1"})
        self.assertEqual(mapping.find_records(self.plain_config, partner.id), partner)
        self.assertEqual(mapping.find_records(self.plain_config, str(partner.id)), partner)
        self.assertEqual(mapping.find_records(self.nested_config, "F1"), partner)
        self.assertFalse(mapping.find_records(self.nested_config, None))
        self.assertFalse(mapping.find_records(self.nested_config, "F1", [("name", "=", "other")]))
        with self.assertSyncError(400, self._line_of(self.plain_config, "id")):
            mapping.find_records(self.plain_config, "abc")
        with self.assertSyncError(400, message="no Record Identifier"):
            mapping.find_records(self._config(), 1)

    def test_filter_domain_respected(self):
        inside = self.env[P].create({"name": "Company", "ref": "FD", "is_company": True})
        outside = self.env[P].create({"name": "Person", "ref": "FD2"})
        self.nested_config.filter_domain = "[('is_company', '=', True)]"
        self.assertEqual(mapping.find_records(self.nested_config, "FD"), inside)
        self.assertFalse(mapping.find_records(self.nested_config, "FD2"))
        record, created = mapping.upsert(self.nested_config, {"ref": "FD2", "name": "Person 2"})
        self.assertTrue(created)
        self.assertNotEqual(record, outside)

    def test_filter_domain_relative_to_now(self):
        config = self.nested_config
        config.filter_domain = (
            "[('write_date', '>=', (datetime.datetime.now() - relativedelta(hours=1)).strftime('%Y-%m-%d %H:%M:%S'))]"
        )
        fresh = self.env[P].create({"name": "Fresh", "ref": "NOW1"})
        stale = self.env[P].create({"name": "Stale", "ref": "NOW2"})
        self.env.flush_all()
        self.env.cr.execute(
            "UPDATE res_partner SET write_date = %s WHERE id = %s",
            [fields.Datetime.now() - timedelta(hours=2), stale.id],
        )
        self.env.invalidate_all()
        domain = config._get_filter_domain()
        self.assertEqual(domain[0][:2], ("write_date", ">="))
        found = self.env[P].search(domain + [("ref", "in", ["NOW1", "NOW2"])])
        self.assertEqual(found, fresh)
        self.assertEqual(mapping.find_records(config, "NOW1"), fresh)
        self.assertFalse(mapping.find_records(config, "NOW2"))

    def test_upsert(self):
        record, created = mapping.upsert(self.nested_config, {"ref": "U1", "name": "First", "country": "BE"})
        self.assertTrue(created)
        self.assertEqual((record.name, record.country_id), ("First", self.be))
        again, created = mapping.upsert(self.nested_config, {"ref": "U1", "name": "Second"})
        self.assertFalse(created)
        self.assertEqual(again, record)
        self.assertEqual((record.name, record.country_id), ("Second", self.be))
        self.env[P].create({"name": "Dup", "ref": "U1"})
        with self.assertSyncError(409, message="2 records match ref 'U1'"):
            mapping.upsert(self.nested_config, {"ref": "U1", "name": "Third"})
        by_id, created = mapping.upsert(self.plain_config, {"id": record.id, "name": "By id"})
        self.assertFalse(created)
        self.assertEqual(by_id.name, "By id")
        with self.assertSyncError(404):
            mapping.upsert(self.plain_config, {"id": 99999999, "name": "Nope"})
        created_record, created = mapping.upsert(self.plain_config, {"name": "No id"})
        self.assertTrue(created and created_record.name == "No id")
        with self.assertSyncError(400, message="Expected a JSON object"):
            mapping.upsert(self.plain_config, "text")

    def test_run_as_user_without_config_access(self):
        """The plan is read with superuser rights, the records with the user's."""
        user = self.env["res.users"].create({
            "name": "Runner", "login": "bj_runner",
            "groups_id": [
                Command.set([self.env.ref("base.group_partner_manager").id, self.env.ref("base.group_user").id])
            ],
        })
        self.nested_config.write({"line_ids": [Command.create({
            "field_id": self._field(P, "comment").id, "api_key": "by", "value_type": "python_plain",
            "script_mode": "exec", "python_script": "log(line.api_key)\nresult = '<p>%s</p>' % env.user.login",
        })]})
        self.env.invalidate_all()
        config = self.nested_config.with_user(user)
        messages = []
        record, created = mapping.upsert(config, {"ref": "RU", "name": "As user", "country": "BE"}, messages=messages)
        self.assertTrue(created)
        self.assertEqual((record.create_uid, record.comment), (user, "<p>bj_runner</p>"))
        self.assertEqual(messages, ["by: by"])
        self.env.invalidate_all()
        payload = mapping.serialize(config, record.with_user(user))[0]
        self.assertEqual((payload["country"]["code"], payload["by"]), ("BE", "<p>bj_runner</p>"))
