import gzip
import json
import zlib
from typing import Any

import pytest

from gateway import compare_body
from gateway.compare import (
    CompiledRules,
    Verdict,
    classify,
    comparable,
    compare,
    compile_rules,
    is_real,
    is_real_mismatch,
    signature,
)
from gateway.exchange import Capture, Difference, DiffKind
from gateway.map_schema import ShadowSettings, merge_shadow

JSON = (("content-type", "application/json"),)


def rules(**route: Any) -> CompiledRules:
    return compile_rules(merge_shadow(ShadowSettings(), ShadowSettings(**route)))


def cap(
    body: Any, *, status: int = 200, headers: tuple[tuple[str, str], ...] = JSON, truncated: bool = False
) -> Capture:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Capture(status, headers, data, truncated)


def diff(owner: Any, candidate: Any, **route: Any) -> tuple[Difference, ...]:
    return compare(cap(owner), cap(candidate), rules(**route))


def kinds(owner: Any, candidate: Any, **route: Any) -> list[tuple[str, DiffKind]]:
    return [(d.path, d.kind) for d in diff(owner, candidate, **route)]


# --- status and JSON kinds -------------------------------------------------------------------


def test_identical_answers_have_no_differences() -> None:
    doc = {"id": 1, "items": [{"price": 1.5, "tags": ["a"]}], "ok": True, "none": None}
    assert diff(doc, json.loads(json.dumps(doc))) == ()


def test_status_difference() -> None:
    got = compare(cap({}, status=200), cap({}, status=500), rules())
    assert got == (Difference("status", DiffKind.STATUS, "200", "500"),)


def test_value_difference_renders_json_values() -> None:
    assert diff({"name": "a"}, {"name": "b"}) == (Difference("body.name", DiffKind.VALUE, '"a"', '"b"'),)


@pytest.mark.parametrize(
    ("owner", "candidate"),
    [(1, "1"), (True, 1), (False, 0), (None, 0), ({"a": 1}, [1]), ("x", ["x"]), (1.0, True)],
)
def test_type_difference(owner: Any, candidate: Any) -> None:
    assert kinds({"v": owner}, {"v": candidate}) == [("body.v", DiffKind.TYPE)]


def test_true_against_one_is_found_inside_subtrees_python_calls_equal() -> None:
    # True == 1 in Python: the walker must not skip this subtree as equal
    owner = {"items": [{"id": 1, "active": True}, {"id": 2, "active": False}]}
    candidate = {"items": [{"id": 1, "active": 1}, {"id": 2, "active": False}]}
    assert kinds(owner, candidate) == [("body.items[].active", DiffKind.TYPE)]
    assert kinds([[True]], [[1]]) == [("body[][]", DiffKind.TYPE)]


def test_int_and_float_of_same_value_are_equal() -> None:
    assert diff({"n": 1, "m": [2]}, {"n": 1.0, "m": [2.0]}) == ()


def test_missing_and_extra_keys() -> None:
    got = diff({"id": 1, "email": "a@x"}, {"id": 1, "phone": "1"})
    assert got == (
        Difference("body.email", DiffKind.MISSING, '"a@x"', None),
        Difference("body.phone", DiffKind.EXTRA, None, '"1"'),
    )


def test_size_then_common_prefix_compared() -> None:
    got = diff({"items": [1, 2, 3]}, {"items": [1, 9]})
    assert got == (
        Difference("body.items", DiffKind.SIZE, "3", "2"),
        Difference("body.items[]", DiffKind.VALUE, "2", "9"),
    )


def test_ordering_for_same_elements_in_other_order() -> None:
    owner = {"items": [{"id": 1}, {"id": 2}, {"id": 3}]}
    candidate = {"items": [{"id": 3}, {"id": 2}, {"id": 1}]}
    assert kinds(owner, candidate) == [("body.items", DiffKind.ORDERING)]


def test_ordering_needs_the_same_multiset() -> None:
    assert kinds({"t": ["a", "a", "b"]}, {"t": ["b", "a", "b"]}) == [("body.t[]", DiffKind.VALUE)]


def test_top_level_list_and_root_type() -> None:
    assert kinds([{"id": 1}], [{"id": 2}]) == [("body[].id", DiffKind.VALUE)]
    assert kinds({"a": 1}, [1]) == [("body", DiffKind.TYPE)]


def test_nested_lists_of_objects_fold_to_one_difference_with_first_example() -> None:
    owner = {"orders": [{"lines": [{"price": 1, "sku": "a"}, {"price": 2, "sku": "b"}]} for _ in range(3)]}
    candidate = json.loads(json.dumps(owner))
    for order in candidate["orders"]:
        for line in order["lines"]:
            line["price"] += 10
    candidate["orders"][2]["lines"][1]["sku"] = "z"
    assert diff(owner, candidate) == (
        Difference("body.orders[].lines[].price", DiffKind.VALUE, "1", "11"),
        Difference("body.orders[].lines[].sku", DiffKind.VALUE, '"b"', '"z"'),
    )


def test_differences_are_sorted_by_path_then_kind() -> None:
    got = compare(
        cap({"z": 1, "a": 1, "m": [1]}, status=200),
        cap({"z": 2, "b": 1, "m": [1, 2]}, status=201),
        rules(),
    )
    assert [(d.path, d.kind) for d in got] == [
        ("body.a", DiffKind.MISSING),
        ("body.b", DiffKind.EXTRA),
        ("body.m", DiffKind.SIZE),
        ("body.z", DiffKind.VALUE),
        ("status", DiffKind.STATUS),
    ]


def test_renderings_are_short() -> None:
    long = "x" * 5000
    big = {"rows": [{"n": i, "text": long} for i in range(100)]}
    got = diff({"s": long, "big": big}, {"s": long + "y"})
    assert {d.path for d in got} == {"body.s", "body.big"}
    for d in got:
        for shown in (d.owner, d.candidate):
            assert shown is None or len(shown) <= 200
    missing = next(d for d in got if d.path == "body.big")
    assert missing.owner is not None and missing.owner.startswith('{"rows": [{"n": 0')
    assert missing.owner.endswith("…")


# --- ignore patterns -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    [
        "body.items[].price",
        "body.items",
        "body.*[].price",
        "body.*.price",
        "body.**.price",
        "**.price",
        "body.**",
        "body",
    ],
)
def test_ignore_patterns_cover_the_nested_price(pattern: str) -> None:
    owner = {"items": [{"price": 1, "name": "a"}]}
    candidate = {"items": [{"price": 2, "name": "a"}]}
    assert diff(owner, candidate, ignore=[pattern]) == ()


@pytest.mark.parametrize("pattern", ["body.items[].name", "body.items.price", "body.*.*.price", "body.item"])
def test_ignore_patterns_that_do_not_cover_the_nested_price(pattern: str) -> None:
    owner = {"items": [{"price": 1}]}
    candidate = {"items": [{"price": 2}]}
    assert kinds(owner, candidate, ignore=[pattern]) == [("body.items[].price", DiffKind.VALUE)]


def test_star_is_exactly_one_segment_and_double_star_any_number() -> None:
    owner = {"user": {"id": 1}, "deep": {"a": {"id": 1}}}
    candidate = {"user": {"id": 2}, "deep": {"a": {"id": 2}}}
    assert kinds(owner, candidate, ignore=["body.*.id"]) == [("body.deep.a.id", DiffKind.VALUE)]
    assert diff(owner, candidate, ignore=["body.**.id"]) == ()


def test_a_pattern_ignores_everything_below_it_but_not_its_siblings() -> None:
    owner = {"meta": {"x": 1, "y": [1]}, "metadata": 1, "updated_at": "t1"}
    candidate = {"meta": {"x": 2, "z": 1}, "metadata": 2, "updated_at": "t2"}
    assert kinds(owner, candidate, ignore=["body.meta", "body.updated_at"]) == [
        ("body.metadata", DiffKind.VALUE)
    ]


def test_ignore_covers_missing_extra_size_and_ordering() -> None:
    owner = {"gone": 1, "list": [1, 2], "order": [1, 2]}
    candidate = {"new": 1, "list": [1], "order": [2, 1]}
    assert kinds(owner, candidate) == [
        ("body.gone", DiffKind.MISSING),
        ("body.list", DiffKind.SIZE),
        ("body.new", DiffKind.EXTRA),
        ("body.order", DiffKind.ORDERING),
    ]
    assert diff(owner, candidate, ignore=["body.gone", "body.new", "body.list", "body.order"]) == ()


def test_ignore_status_and_headers_by_pattern() -> None:
    owner = Capture(200, (("content-type", "application/json"), ("etag", "a")), b"{}")
    candidate = Capture(404, (("content-type", "text/html"), ("etag", "b")), b"{}")
    assert (
        compare(
            owner, candidate, rules(ignore=["status", "headers"], compare_headers=["etag", "content-type"])
        )
        == ()
    )
    got = compare(owner, candidate, rules(ignore=["headers.etag"], compare_headers=["etag", "content-type"]))
    assert [(d.path, d.kind) for d in got] == [
        ("headers.content-type", DiffKind.HEADER),
        ("status", DiffKind.STATUS),
    ]


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("items.price", "must start with"),
        ("body..price", "empty segment"),
        ("", "empty segment"),
        ("body.items[0].price", "bad segment"),
    ],
)
def test_malformed_patterns_are_rejected_with_the_pattern_named(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        rules(ignore=[pattern])
    assert repr(pattern) in str(err.value)


def test_rules_are_compiled_once_per_rule_set() -> None:
    shadow = merge_shadow(ShadowSettings(), ShadowSettings(ignore=["body.a"]))
    again = merge_shadow(ShadowSettings(), ShadowSettings(ignore=["body.a"]))
    assert compile_rules(shadow) is compile_rules(again)


# --- unordered lists and float tolerance -----------------------------------------------------


def test_unordered_lists_are_multisets() -> None:
    owner = {"items": [{"id": 1}, {"id": 2}, {"id": 2}]}
    shuffled = {"items": [{"id": 2}, {"id": 1}, {"id": 2}]}
    assert diff(owner, shuffled, unordered=["body.items"]) == ()
    # duplicates count: two 2s and one 1 is not one 2 and two 1s
    other = {"items": [{"id": 1}, {"id": 2}, {"id": 1}]}
    assert kinds(owner, other, unordered=["body.items"]) == [("body.items[].id", DiffKind.VALUE)]
    shorter = {"items": [{"id": 2}, {"id": 1}]}
    assert kinds(owner, shorter, unordered=["body.items"]) == [("body.items", DiffKind.SIZE)]


def test_unordered_applies_only_to_the_named_lists() -> None:
    owner = {"items": [{"tags": ["a", "b"], "refs": [1, 2]}, {"tags": [], "refs": []}]}
    candidate = {"items": [{"tags": [], "refs": []}, {"tags": ["b", "a"], "refs": [2, 1]}]}
    got = kinds(owner, candidate, unordered=["body.items", "body.items[].tags"])
    assert got == [("body.items[].refs", DiffKind.ORDERING)]


def test_unordered_pairs_leftovers_so_tolerance_still_applies() -> None:
    owner = {"items": [{"id": "a", "price": 1.0}, {"id": "b", "price": 2.0}]}
    candidate = {"items": [{"id": "b", "price": 2.0}, {"id": "a", "price": 1.004}]}
    assert diff(owner, candidate, unordered=["body.items"], float_tolerance=0.01) == ()
    assert kinds(owner, candidate, unordered=["body.items"]) == [("body.items[].price", DiffKind.VALUE)]


def test_float_tolerance_is_absolute_and_applies_to_ints_and_floats() -> None:
    assert diff({"p": 1.0, "n": 10}, {"p": 1.005, "n": 10.009}, float_tolerance=0.01) == ()
    assert kinds({"p": 1.0}, {"p": 1.02}, float_tolerance=0.01) == [("body.p", DiffKind.VALUE)]
    assert kinds({"p": 1.0}, {"p": 1.005}) == [("body.p", DiffKind.VALUE)]


def test_bool_is_not_a_number_even_with_tolerance() -> None:
    assert kinds({"p": True}, {"p": 1.001}, float_tolerance=0.01) == [("body.p", DiffKind.TYPE)]


def test_huge_integers_compare_without_overflow() -> None:
    big = 10**400
    assert kinds({"n": big}, {"n": 1.5}, float_tolerance=0.1) == [("body.n", DiffKind.VALUE)]
    assert diff({"n": big}, {"n": big}) == ()


# --- headers ---------------------------------------------------------------------------------


def test_content_type_is_compared_by_default() -> None:
    got = compare(cap({}), cap({}, headers=(("content-type", "application/json; charset=utf-8"),)), rules())
    assert got == (
        Difference(
            "headers.content-type", DiffKind.HEADER, "application/json", "application/json; charset=utf-8"
        ),
    )


def test_a_header_absent_on_one_side() -> None:
    owner = cap({}, headers=(*JSON, ("x-request-id", "1")))
    got = compare(owner, cap({}), rules(compare_headers=["content-type", "X-Request-Id"]))
    assert got == (Difference("headers.x-request-id", DiffKind.HEADER, "1", None),)


def test_date_server_and_cookie_values_are_never_compared() -> None:
    owner = cap(
        {}, headers=(*JSON, ("date", "Mon"), ("server", "gunicorn"), ("set-cookie", "session=abc; Path=/"))
    )
    candidate = cap(
        {}, headers=(*JSON, ("date", "Tue"), ("server", "uvicorn"), ("set-cookie", "session=xyz"))
    )
    assert compare(owner, candidate, rules()) == ()
    assert compare(owner, candidate, rules(compare_headers=["date", "server", "set-cookie"])) == ()


def test_listed_set_cookie_compares_cookie_names_only() -> None:
    listed = rules(compare_headers=["content-type", "set-cookie"])
    owner = cap({}, headers=(*JSON, ("set-cookie", "session=abc"), ("set-cookie", "csrf=1")))
    candidate = cap({}, headers=(*JSON, ("set-cookie", "csrf=2")))
    assert compare(owner, candidate, listed) == (
        Difference("headers.set-cookie", DiffKind.HEADER, "csrf, session", "csrf"),
    )
    assert compare(owner, candidate, rules()) == ()
    assert (
        compare(owner, candidate, rules(compare_headers=["set-cookie"], ignore_headers=["set-cookie"])) == ()
    )


def test_ignore_headers_removes_a_listed_header() -> None:
    owner = cap({}, headers=(*JSON, ("etag", "a")))
    candidate = cap({}, headers=(*JSON, ("etag", "b")))
    assert [d.path for d in compare(owner, candidate, rules(compare_headers=["etag"]))] == ["headers.etag"]
    assert compare(owner, candidate, rules(compare_headers=["etag"], ignore_headers=["ETag"])) == ()


# --- encodings and body kinds ----------------------------------------------------------------


DOC = {"items": [{"id": i, "price": i * 1.5} for i in range(50)]}
RAW = json.dumps(DOC).encode()


def encoded(data: bytes, coding: str, content_type: str = "application/json") -> Capture:
    return Capture(200, (("content-type", content_type), ("content-encoding", coding)), data)


def test_gzip_body_equals_the_plain_body_and_another_gzip_of_it() -> None:
    plain = cap(RAW)
    assert compare(plain, encoded(gzip.compress(RAW, mtime=1), "gzip"), rules()) == ()
    # gzip headers differ by timestamp; the decoded bodies do not
    assert (
        compare(
            encoded(gzip.compress(RAW, mtime=1), "gzip"),
            encoded(gzip.compress(RAW, mtime=2), "gzip"),
            rules(),
        )
        == ()
    )


def test_gzip_with_several_members() -> None:
    assert (
        compare(cap(RAW), encoded(gzip.compress(RAW[:10]) + gzip.compress(RAW[10:]), "gzip"), rules()) == ()
    )


def test_deflate_with_and_without_zlib_wrapper() -> None:
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    bare = raw_deflate.compress(RAW) + raw_deflate.flush()
    assert compare(cap(RAW), encoded(zlib.compress(RAW), "deflate"), rules()) == ()
    assert compare(cap(RAW), encoded(bare, "deflate"), rules()) == ()


def test_decoded_bodies_are_then_compared_structurally() -> None:
    changed = json.loads(RAW)
    changed["items"][3]["price"] = 0
    got = compare(cap(RAW), encoded(gzip.compress(json.dumps(changed).encode()), "gzip"), rules())
    assert [(d.path, d.kind) for d in got] == [("body.items[].price", DiffKind.VALUE)]


@pytest.mark.parametrize("body", [b"not gzip at all", gzip.compress(RAW)[:-12]])
def test_invalid_gzip_is_a_digest_difference(body: bytes) -> None:
    got = compare(cap(RAW), encoded(body, "gzip"), rules())
    assert len(got) == 1
    assert (got[0].path, got[0].kind) == ("body", DiffKind.DIGEST)
    assert got[0].owner is not None and got[0].owner.startswith("sha256:")
    assert got[0].candidate is not None and got[0].candidate.startswith("undecodable gzip body")


def test_unsupported_encoding_is_a_digest_difference_unless_bytes_are_equal() -> None:
    assert compare(encoded(b"\x01\x02", "br"), encoded(b"\x01\x02", "br"), rules()) == ()
    got = compare(encoded(b"\x01\x02", "br"), encoded(b"\x01\x03", "br"), rules())
    assert [(d.path, d.kind) for d in got] == [("body", DiffKind.DIGEST)]
    assert got[0].owner is not None and "content-encoding 'br'" in got[0].owner


def test_decoding_stops_at_the_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compare_body, "MAX_DECODED_BYTES", 1000)
    bomb = gzip.compress(b"{}" + b" " * 100_000)
    got = compare(cap(b"{}"), encoded(bomb, "gzip"), rules())
    assert [(d.path, d.kind) for d in got] == [("body", DiffKind.DIGEST)]
    assert got[0].candidate is not None and "more than 1000 bytes" in got[0].candidate


def test_json_parse_failure_on_one_side_is_a_type_difference() -> None:
    got = compare(cap({"a": 1}), cap(b"<html>oops</html>"), rules())
    assert got == (Difference("body", DiffKind.TYPE, '{"a": 1}', "<html>oops</html>"),)


def test_json_parse_failure_on_both_sides_compares_text() -> None:
    got = compare(cap(b"{broken"), cap(b"{broken too"), rules())
    assert [(d.path, d.kind) for d in got] == [("body", DiffKind.TEXT)]


def test_json_nested_deeper_than_the_walker_falls_back_to_text() -> None:
    depth = 900
    got = compare(cap(b"[" * depth + b"1" + b"]" * depth), cap(b"[" * depth + b"2" + b"]" * depth), rules())
    assert [(d.path, d.kind) for d in got] == [("body", DiffKind.TEXT)]


def test_nan_equals_nan() -> None:
    # json.loads accepts NaN, and Python's float NaN is unequal to itself
    assert kinds(b'{"x": NaN, "y": 1}', b'{"x": NaN, "y": 2}') == [("body.y", DiffKind.VALUE)]


def test_json_types_include_plus_json() -> None:
    problem = (("content-type", "application/problem+json"),)
    got = compare(cap({"title": "a"}, headers=problem), cap({"title": "b"}, headers=problem), rules())
    assert [(d.path, d.kind) for d in got] == [("body.title", DiffKind.VALUE)]


FORM = (("content-type", "application/x-www-form-urlencoded"),)


def test_form_bodies_compare_field_by_field() -> None:
    owner = cap(b"a=1&b=2&c=x&c=y&keep=", headers=FORM)
    assert compare(owner, cap(b"keep=&c=x&c=y&b=2&a=1", headers=FORM), rules()) == ()
    got = compare(owner, cap(b"a=9&c=x&keep=&d=4", headers=FORM), rules())
    assert got == (
        Difference("body.a", DiffKind.VALUE, '"1"', '"9"'),
        Difference("body.b", DiffKind.MISSING, '"2"', None),
        Difference("body.c", DiffKind.VALUE, '["x", "y"]', '"x"'),
        Difference("body.d", DiffKind.EXTRA, None, '"4"'),
    )
    assert [
        d.path for d in compare(owner, cap(b"a=9&b=2&c=x&c=y&keep=", headers=FORM), rules(ignore=["body.a"]))
    ] == []


def test_text_bodies_compare_as_text_with_an_excerpt_at_the_difference() -> None:
    html = (("content-type", "text/html; charset=utf-8"),)
    page = "<html>" + "<p>row</p>" * 100 + "<b>total 10</b>" + "<p>end</p>" * 100 + "</html>"
    got = compare(
        cap(page.encode(), headers=html), cap(page.replace("10", "11").encode(), headers=html), rules()
    )
    assert [(d.path, d.kind) for d in got] == [("body", DiffKind.TEXT)]
    assert got[0].owner is not None and got[0].candidate is not None
    assert "total 10" in got[0].owner and "total 11" in got[0].candidate
    assert len(got[0].owner) == 200 and got[0].owner.startswith("…") and got[0].owner.endswith("…")


def test_text_compares_decoded_characters_not_bytes() -> None:
    latin = cap("café".encode("latin-1"), headers=(("content-type", "text/plain; charset=latin-1"),))
    utf8 = cap("café".encode(), headers=(("content-type", "text/plain; charset=latin-1"),))
    fixed = cap("café".encode(), headers=(("content-type", "text/plain; charset=utf-8"),))
    assert [d.kind for d in compare(latin, utf8, rules(compare_headers=[]))] == [DiffKind.TEXT]
    assert compare(latin, fixed, rules(compare_headers=[])) == ()


def test_binary_bodies_compare_by_digest() -> None:
    png = (("content-type", "image/png"),)
    assert compare(cap(b"\x89PNG1", headers=png), cap(b"\x89PNG1", headers=png), rules()) == ()
    got = compare(cap(b"\x89PNG1", headers=png), cap(b"\x89PNG22", headers=png), rules())
    assert len(got) == 1 and (got[0].path, got[0].kind) == ("body", DiffKind.DIGEST)
    assert (
        got[0].owner is not None and got[0].owner.startswith("sha256:") and got[0].owner.endswith("(5 bytes)")
    )
    assert got[0].owner != got[0].candidate


def test_truncated_captures_are_not_compared_beyond_status_and_headers() -> None:
    whole, cut = cap({"a": 1}), cap({"a": 2}, status=500, truncated=True)
    assert comparable(whole, cut) == "response_too_large"
    assert comparable(cut, whole) == "response_too_large"
    assert comparable(whole, whole) is None
    assert [d.path for d in compare(whole, cut, rules())] == ["status"]


# --- signature -------------------------------------------------------------------------------


def test_signature_is_empty_for_an_exact_match() -> None:
    assert signature(()) == ""


def test_signature_depends_on_paths_and_kinds_only() -> None:
    a = Difference("body.a", DiffKind.VALUE, "1", "2")
    b = Difference("status", DiffKind.STATUS, "200", "500")
    same = signature((a, b))
    assert len(same) == 16 and int(same, 16) >= 0
    assert signature((b, a)) == same
    assert signature((Difference("body.a", DiffKind.VALUE, "7", "8"), b)) == same
    assert signature((a,)) != same
    assert signature((Difference("body.a", DiffKind.TYPE, "1", '"1"'), b)) != same
    assert signature(diff({"a": 1}, {"a": 2})) == signature(diff({"a": 5}, {"a": 6}))


# --- noise (Diffy's rule) --------------------------------------------------------------------

F = ("body.updated_at", DiffKind.VALUE)


def test_exactly_twenty_percent_more_than_noise_is_noise() -> None:
    # n = 10 %; c = 12 % is exactly 1.2 n: not above it
    assert classify({F: 12}, 100, {F: 10}, 100).noise == {F}
    assert classify({F: 13}, 100, {F: 10}, 100).real == {F}


def test_exactly_three_hundredths_of_a_percent_is_noise() -> None:
    assert not is_real(3, 10_000, 0, 0)  # c - n = 0.0003 exactly
    assert is_real(4, 10_000, 0, 0)
    # with noise: n = 0.01 %, c = 0.04 % → c - n = 0.03 % exactly, although c > 1.2 n
    assert not is_real(4, 10_000, 1, 10_000)
    assert is_real(5, 10_000, 1, 10_000)


def test_a_field_differing_on_every_call_on_both_sides_is_noise() -> None:
    verdicts = classify({F: 500}, 500, {F: 50}, 50)
    assert verdicts.noise == {F} and verdicts.real == frozenset()
    (field,) = verdicts.fields
    assert (field.rate, field.noise_rate, field.verdict) == (1.0, 1.0, Verdict.NOISE)


def test_a_field_only_the_candidate_gets_wrong_is_real() -> None:
    price = ("body.items[].price", DiffKind.VALUE)
    verdicts = classify({F: 500, price: 40}, 500, {F: 50}, 50)
    assert verdicts.real == {price}
    assert verdicts.noise == {F}
    assert [f.path for f in verdicts.fields] == ["body.items[].price", "body.updated_at"]


def test_without_noise_runs_everything_above_the_absolute_threshold_is_real() -> None:
    fields = {F: 1, ("body.a", DiffKind.MISSING): 2}
    verdicts = classify(fields, 5000, {F: 999}, 0)  # noise counts without runs mean nothing
    assert verdicts.real == {("body.a", DiffKind.MISSING)}  # 2/5000 = 0.04 %
    assert verdicts.noise == {F}  # 1/5000 = 0.02 %


def test_no_comparisons_means_nothing_is_real() -> None:
    assert classify({F: 0}, 0, {}, 0).real == frozenset()
    with pytest.raises(ValueError):
        is_real(-1, 10, 0, 0)


def test_is_real_mismatch_needs_one_difference_outside_noise() -> None:
    noisy = Difference("body.updated_at", DiffKind.VALUE, '"t1"', '"t2"')
    real = Difference("body.price", DiffKind.VALUE, "1", "2")
    assert not is_real_mismatch((noisy,), {F})
    assert is_real_mismatch((noisy, real), {F})
    assert not is_real_mismatch((), {F})
    # a noisy path is noise only for its kind
    assert is_real_mismatch((Difference("body.updated_at", DiffKind.MISSING, '"t1"', None),), {F})


# --- size ------------------------------------------------------------------------------------


def test_a_one_megabyte_pair_compares() -> None:
    doc = {
        "items": [
            {"id": i, "name": f"product {i}", "price": i / 7, "active": i % 2 == 0, "tags": ["a", "b"]}
            for i in range(10_000)
        ]
    }
    owner = json.dumps(doc).encode()
    assert len(owner) > 1_000_000
    doc["items"][8765]["price"] = -1
    doc["items"][10]["active"] = 1
    got = compare(cap(owner), cap(json.dumps(doc).encode()), rules())
    assert [(d.path, d.kind) for d in got] == [
        ("body.items[].active", DiffKind.TYPE),
        ("body.items[].price", DiffKind.VALUE),
    ]


def test_objects_with_booleans_and_keys_in_another_order_are_equal_in_a_list() -> None:
    """Regression (found by bench/micro.py): Flask sorts keys, pydantic keeps field order;
    with a boolean inside, the fast equality check cannot tell and the list was reported as
    'ordering' though every element matched."""
    flask_style = [{"active": True, "id": 1, "name": "a"}, {"active": False, "id": 2, "name": "b"}]
    pydantic_style = [{"id": 1, "name": "a", "active": True}, {"id": 2, "name": "b", "active": False}]
    assert diff({"items": flask_style}, {"items": pydantic_style}) == ()
    # a real reordering of such objects is still one
    assert kinds({"items": flask_style}, {"items": pydantic_style[::-1]}) == [("body.items", DiffKind.ORDERING)]
    # and a real difference inside one is still found
    changed = [{"id": 1, "name": "a", "active": False}, {"id": 2, "name": "b", "active": False}]
    assert kinds({"items": flask_style}, {"items": changed}) == [("body.items[].active", DiffKind.VALUE)]
