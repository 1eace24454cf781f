from urllib.parse import parse_qsl, urlsplit

import pytest
from lib import paging
from lib.paging import MISSING, Pager, Paging, PagingLoop, get_path, next_link, parse_link_header


def query(url):
    return dict(parse_qsl(urlsplit(url).query))


# ---------------------------------------------------------------- dotted paths
def test_get_path_plain_and_nested():
    body = {"paging": {"next": {"after": "42"}}, "links": {"next": "/p2"}, "data": {"items": [1, 2]}}
    assert get_path(body, "paging.next.after") == "42"
    assert get_path(body, "links.next") == "/p2"
    assert get_path(body, "data.items") == [1, 2]
    assert get_path(body, "") is body
    assert get_path(body, "paging.previous") is MISSING
    assert get_path(body, "links.next.deeper") is MISSING


def test_get_path_key_with_dots_is_found_whole():
    body = {"@odata.nextLink": "https://graph.microsoft.com/v1.0/users?$skiptoken=X", "value": []}
    assert get_path(body, "@odata.nextLink").endswith("$skiptoken=X")
    # the longest key wins, and a dead end falls back to shorter ones
    assert get_path({"a.b": {"c": 1}, "a": {"b": {"c": 2}}}, "a.b.c") == 1
    assert get_path({"a.b": {}, "a": {"b": {"c": 2}}}, "a.b.c") == 2


def test_get_path_list_indexes():
    body = {"data": [{"id": "cus_1"}, {"id": "cus_2"}], "has_more": True}
    assert get_path(body, "data.-1.id") == "cus_2"
    assert get_path(body, "data.0.id") == "cus_1"
    assert get_path(body, "data.5.id") is MISSING
    assert get_path({"data": []}, "data.-1.id") is MISSING
    assert get_path(body, "data.x") is MISSING
    assert get_path("text", "a") is MISSING


# ---------------------------------------------------------------- Link headers
def test_parse_link_header():
    value = (
        '<https://api.github.com/repos/o/r/issues?page=2>; rel="next", '
        '<https://api.github.com/repos/o/r/issues?page=5>; rel="last"'
    )
    assert parse_link_header(value) == [
        ("https://api.github.com/repos/o/r/issues?page=2", {"rel": "next"}),
        ("https://api.github.com/repos/o/r/issues?page=5", {"rel": "last"}),
    ]
    assert next_link(value) == "https://api.github.com/repos/o/r/issues?page=2"


def test_next_link_variants():
    shopify = (
        '<https://shop.myshopify.com/admin/api/2024-01/products.json?limit=2&page_info=abc>; rel="previous", '
        '<https://shop.myshopify.com/admin/api/2024-01/products.json?limit=2&page_info=def>; rel="next"'
    )
    assert next_link(shopify).endswith("page_info=def")
    assert next_link("<https://x.test/a?p=2>; rel=next") == "https://x.test/a?p=2"  # unquoted
    assert next_link('<https://x.test/a?p=2>; title="a, b; c"; rel="prev next"') == "https://x.test/a?p=2"
    assert next_link('</items?page=3>; rel="next"', "https://x.test/items?page=2") == "https://x.test/items?page=3"
    assert next_link('<https://x.test/a?p=1>; rel="prev"') is None
    assert next_link("") is None
    assert next_link(None) is None
    assert next_link("garbage") is None


def test_header_lookup_ignores_case():
    assert paging.header({"link": "x"}, "Link") == "x"
    assert paging.header({}, "Link") is None
    assert paging.header(None, "Link") is None


# ---------------------------------------------------------------- pagers
def walk(pager, pages):
    """Feed ``pages`` (headers, body, count) to ``pager``; the URLs asked."""
    urls = [pager.first()]
    for headers, body, count in pages:
        url = pager.next(headers, body, count)
        if url is None:
            break
        urls.append(url)
    return urls


def test_offset_style_is_todays_behaviour():
    pager = Pager("https://x.test/items?active=1", Paging(style="offset", page_size=100))
    urls = walk(pager, [({}, None, 100), ({}, None, 100), ({}, None, 40)])
    assert [query(u) for u in urls] == [
        {"active": "1", "limit": "100", "offset": "0"},
        {"active": "1", "limit": "100", "offset": "100"},
        {"active": "1", "limit": "100", "offset": "200"},
    ]


def test_offset_style_asks_no_more_than_the_cap():
    pager = Pager("https://x.test/items", Paging(style="offset", page_size=20), cap=30)
    urls = walk(pager, [({}, None, 20), ({}, None, 10), ({}, None, 10)])
    assert [query(u)["limit"] for u in urls] == ["20", "10"]


def test_offset_style_custom_names():
    pager = Pager("https://x.test/items", Paging(style="offset", page_size=50, size_param="_limit",
                                                   offset_param="_start"))
    assert query(pager.first()) == {"_limit": "50", "_start": "0"}
    assert query(pager.next({}, None, 50)) == {"_limit": "50", "_start": "50"}


def test_page_style_until_a_short_or_empty_page():
    p = Paging(style="page", page_size=10, size_param="per_page", page_param="page")
    urls = walk(Pager("https://shop.test/wp-json/wc/v3/orders", p), [({}, None, 10), ({}, None, 10), ({}, None, 3)])
    assert [query(u) for u in urls] == [
        {"page": "1", "per_page": "10"},
        {"page": "2", "per_page": "10"},
        {"page": "3", "per_page": "10"},
    ]
    urls = walk(Pager("https://x.test/o", p), [({}, None, 10), ({}, None, 0)])
    assert len(urls) == 2


def test_page_style_stops_at_the_cap():
    pager = Pager("https://x.test/o", Paging(style="page", page_size=10), cap=15)
    assert walk(pager, [({}, None, 10), ({}, None, 10), ({}, None, 10)]) == [
        "https://x.test/o?page=1&limit=10",
        "https://x.test/o?page=2&limit=10",
    ]


def test_link_style_follows_rel_next():
    p = Paging(style="link", page_size=2, size_param="_limit", page_param="_page")
    pager = Pager("http://127.0.0.1:3000/posts", p)
    first = pager.first()
    assert query(first) == {"_page": "1", "_limit": "2"}
    second = pager.next({"Link": '</posts?_page=2&_limit=2>; rel="next", </posts?_page=9&_limit=2>; rel="last"'},
                        [], 2)
    assert second == "http://127.0.0.1:3000/posts?_page=2&_limit=2"
    assert pager.next({"Link": '</posts?_page=1&_limit=2>; rel="first"'}, [], 2) is None
    # empty parameter names are not sent (Shopify refuses a page parameter)
    pager = Pager("https://s.test/products.json", Paging(style="link", page_size=250, page_param=""))
    assert query(pager.first()) == {"limit": "250"}
    pager = Pager("https://s.test/products.json", Paging(style="link", page_size=250, page_param="", size_param=""))
    assert pager.first() == "https://s.test/products.json"


def test_cursor_style_until_the_cursor_is_absent():
    p = Paging(style="cursor", page_size=100, cursor_param="after", cursor_path="paging.next.after")
    pager = Pager("https://api.hubapi.com/crm/v3/objects/contacts", p)
    assert query(pager.first()) == {"limit": "100"}
    url = pager.next({}, {"results": [1], "paging": {"next": {"after": "abc"}}}, 1)
    assert query(url) == {"limit": "100", "after": "abc"}
    url = pager.next({}, {"results": [1], "paging": {"next": {"after": "def"}}}, 1)
    assert query(url) == {"limit": "100", "after": "def"}
    assert pager.next({}, {"results": [1]}, 1) is None
    for body in ({"paging": {"next": {"after": None}}}, {"paging": {"next": {"after": ""}}}, "text", None):
        pager = Pager("https://x.test/c", p)
        pager.first()
        assert pager.next({}, body, 1) is None


def test_cursor_style_numbers_and_stripe_last_id():
    p = Paging(style="cursor", page_size=3, cursor_param="starting_after", cursor_path="data.-1.id")
    pager = Pager("https://api.stripe.com/v1/customers", p)
    pager.first()
    assert query(pager.next({}, {"data": [{"id": "c1"}, {"id": "c3"}]}, 2))["starting_after"] == "c3"
    assert pager.next({}, {"data": []}, 0) is None
    pager = Pager("https://x.test/c", Paging(style="cursor", cursor_path="next"))
    pager.first()
    assert query(pager.next({}, {"next": 7}, 1))["cursor"] == "7"


def test_next_url_style():
    p = Paging(style="next_url", page_size=50, size_param="$top", next_url_path="@odata.nextLink")
    pager = Pager("https://graph.microsoft.com/v1.0/users", p)
    assert query(pager.first()) == {"$top": "50"}
    nxt = "https://graph.microsoft.com/v1.0/users?$top=50&$skiptoken=X1"
    assert pager.next({}, {"value": [1], "@odata.nextLink": nxt}, 1) == nxt
    assert pager.next({}, {"value": [1]}, 1) is None
    # relative URLs (Salesforce's nextRecordsUrl) are resolved against the current one
    p = Paging(style="next_url", size_param="", next_url_path="nextRecordsUrl")
    pager = Pager("https://my.salesforce.com/services/data/v60.0/query?q=SELECT+Id+FROM+Account", p)
    pager.first()
    url = pager.next({}, {"records": [1], "nextRecordsUrl": "/services/data/v60.0/query/01gD-2000"}, 1)
    assert url == "https://my.salesforce.com/services/data/v60.0/query/01gD-2000"
    pager = Pager("https://x.test/a", Paging(style="next_url", next_url_path="links.next"))
    pager.first()
    assert pager.next({}, {"links": {"next": None}}, 1) is None
    assert Pager("https://x.test/a", Paging(style="next_url", next_url_path="links.next")).next(
        {}, {"links": {"next": "   "}}, 1
    ) is None


def test_same_next_url_twice_is_a_loop():
    p = Paging(style="next_url", next_url_path="next", size_param="")
    pager = Pager("https://x.test/a", p)
    pager.first()
    assert pager.next({}, {"next": "https://x.test/a?p=2"}, 1)
    with pytest.raises(PagingLoop) as info:
        pager.next({}, {"next": "https://x.test/a?p=2"}, 1)
    assert info.value.url == "https://x.test/a?p=2"
    # pointing back at the first page is a loop too
    pager = Pager("https://x.test/a", Paging(style="link", page_param="", size_param=""))
    pager.first()
    with pytest.raises(PagingLoop):
        pager.next({"Link": '<https://x.test/a>; rel="next"'}, [], 1)
    pager = Pager("https://x.test/a", Paging(style="cursor", cursor_path="c", size_param=""))
    pager.first()
    pager.next({}, {"c": "same"}, 1)
    with pytest.raises(PagingLoop):
        pager.next({}, {"c": "same"}, 1)


def test_another_origin_is_never_followed():
    for link in ("https://evil.test/a?p=2", "http://x.test/a?p=2", "https://x.test:8443/a?p=2"):
        pager = Pager("https://x.test/a", Paging(style="next_url", next_url_path="next"))
        pager.first()
        with pytest.raises(paging.ForeignOrigin) as info:
            pager.next({}, {"next": link}, 1)
        assert info.value.url == link
    pager = Pager("https://X.test:443/a", Paging(style="link"))
    pager.first()
    assert pager.next({"Link": '<https://x.test/a?page=2>; rel="next"'}, [], 10) == "https://x.test/a?page=2"
    assert paging.origin("http://h.test/x") == ("http", "h.test", 80)


def test_cap_ends_every_style():
    for style in paging.STYLES:
        pager = Pager("https://x.test/a", Paging(style=style, page_size=5, next_url_path="n", cursor_path="c"), cap=5)
        pager.first()
        assert pager.next({"Link": '<https://x.test/b>; rel="next"'}, {"n": "https://x.test/b", "c": "1"}, 5) is None


def test_unknown_style():
    with pytest.raises(ValueError):
        Pager("https://x.test/a", Paging(style="sideways"))
