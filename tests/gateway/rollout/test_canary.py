import random
from collections.abc import Callable
from typing import Any

import mmh3
import pytest
from pydantic import ValidationError

from gateway.rollout.canary import bucket, serves_new, sticky_key
from gateway.rollout_schema import CanarySettings, OnMissing

STICKY = ("header:X-User-Id", "cookie:session", "client_ip")


def scope(*headers: tuple[str, str], client: tuple[str, int] | None = None) -> dict[str, Any]:
    built: dict[str, Any] = {
        "type": "http",
        "headers": [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers],
    }
    if client is not None:
        built["client"] = client
    return built


def user(key: str) -> dict[str, Any]:
    return scope(("X-User-Id", key))


def canary(percent: float, on_missing: OnMissing = OnMissing.LEGACY) -> CanarySettings:
    return CanarySettings(percent=percent, sticky=STICKY, on_missing=on_missing)


def never_called() -> float:
    raise AssertionError("a request with a key must not draw a random bucket")


# -- bucket -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "seed", "expected"),
    [  # published MurmurHash3 x86_32 vectors (SMHasher's verification strings, as listed on Wikipedia)
        ("", 0, 0x00000000),
        ("", 1, 0x514E28B7),
        ("The quick brown fox jumps over the lazy dog", 0, 0x2E4FF723),
        ("Hello, world!", 1234, 0xFAF6CDB3),
    ],
)
def test_mmh3_is_murmurhash3_x86_32(data: str, seed: int, expected: int) -> None:
    assert mmh3.hash(data, seed, signed=False) == expected


def test_bucket_hashes_route_colon_key_unsigned() -> None:
    assert bucket("gr1", "123") == mmh3.hash("gr1:123", 0, signed=False) % 100 + 1 == 73
    # "groupX:999" hashes negative when signed: a signed modulo would give 29, Unleash gives 25
    assert mmh3.hash("groupX:999") < 0
    assert bucket("groupX", "999") == 25


def test_bucket_is_always_1_to_100_and_uses_them_all() -> None:
    seen = {bucket("r", f"user-{i}") for i in range(5000)}
    assert seen == set(range(1, 101))


# -- serves_new ----------------------------------------------------------------------------------


def test_the_same_key_always_lands_on_the_same_side() -> None:
    settings = canary(30)
    for i in range(500):
        first = serves_new("users.get", settings, user(f"u{i}"), rand=never_called)
        for _ in range(3):
            assert serves_new("users.get", settings, user(f"u{i}"), rand=never_called) is first


def test_raising_the_percentage_never_moves_a_user_back_to_legacy() -> None:
    rng = random.Random(7)
    keys = [f"user-{rng.getrandbits(64):x}" for _ in range(2000)]
    percents = [0, 1, 2, 5, 9, 10, 25, 33, 50, 75, 99, 100]
    for i, low in enumerate(percents):
        before = {key for key in keys if serves_new("r", canary(low), user(key))}
        for high in percents[i + 1 :]:
            after = {key for key in keys if serves_new("r", canary(high), user(key))}
            assert before <= after, (low, high, sorted(before - after)[:5])
    # and the property is not vacuous: the cohort does grow
    assert not any(serves_new("r", canary(0), user(k)) for k in keys)
    assert 400 < sum(serves_new("r", canary(25), user(k)) for k in keys) < 600
    assert all(serves_new("r", canary(100), user(k)) for k in keys)


def test_each_route_gets_its_own_cohort() -> None:
    keys = [f"user-{i}" for i in range(2000)]
    a = [serves_new("users.get", canary(50), user(k)) for k in keys]
    b = [serves_new("orders.list", canary(50), user(k)) for k in keys]
    disagree = sum(x != y for x, y in zip(a, b, strict=True))
    # independent 50 % cohorts disagree on about half the users; the same cohort on none
    assert 800 < disagree < 1200


@pytest.mark.parametrize("percent", [1, 5, 10, 25, 50, 90])
def test_share_in_the_canary_matches_the_percentage(percent: int) -> None:
    rng = random.Random(percent)
    settings = canary(percent)
    inside = sum(
        serves_new("products.search", settings, user(f"{rng.getrandbits(96):x}"), rand=never_called)
        for _ in range(100_000)
    )
    assert abs(inside / 1000 - percent) <= 1.0  # share in percent, over 100,000 keys


def test_percent_is_whole_buckets_and_a_fraction_is_refused() -> None:
    key = next(f"u{i}" for i in range(10_000) if bucket("r", f"header:u{i}") == 10)
    assert serves_new("r", canary(10), user(key))
    assert not serves_new("r", canary(9), user(key))
    with pytest.raises(ValidationError, match="valid integer"):
        canary(10.5)  # it would silently round down: the map refuses it instead


def test_percent_0_is_never_and_100_is_always() -> None:
    for i in range(300):
        assert not serves_new("r", canary(0, OnMissing.RANDOM), user(f"u{i}"))
        assert serves_new("r", canary(100), user(f"u{i}"))
    assert not serves_new("r", canary(0, OnMissing.RANDOM), scope(), rand=lambda: 0.0)
    assert serves_new("r", canary(100, OnMissing.LEGACY), scope(), rand=never_called)


def test_no_key_with_on_missing_legacy_is_never_new() -> None:
    for percent in (1, 50, 99):
        assert not any(
            serves_new("r", canary(percent, OnMissing.LEGACY), scope(), rand=lambda: 0.0) for _ in range(100)
        )


def test_no_key_with_on_missing_random_draws_a_bucket_per_request() -> None:
    settings = canary(30, OnMissing.RANDOM)
    assert serves_new("r", settings, scope(), rand=lambda: 0.0)  # bucket 1
    assert serves_new("r", settings, scope(), rand=lambda: 0.299)  # bucket 30
    assert not serves_new("r", settings, scope(), rand=lambda: 0.30)  # bucket 31
    assert not serves_new("r", settings, scope(), rand=lambda: 0.999999)  # bucket 100

    rand: Callable[[], float] = random.Random(3).random
    inside = sum(serves_new("r", settings, scope(), rand=rand) for _ in range(20_000))
    assert abs(inside / 20_000 - 0.30) < 0.02


def test_a_present_key_never_consults_on_missing() -> None:
    for on_missing in OnMissing:
        settings = canary(50, on_missing)
        for i in range(200):
            expected = bucket("r", f"header:u{i}") <= 50
            assert serves_new("r", settings, user(f"u{i}"), rand=never_called) is expected


# -- sticky_key ----------------------------------------------------------------------------------


def test_keys_are_tried_in_order_and_prefixed_by_kind() -> None:
    full = scope(("x-user-id", "alice"), ("cookie", "session=s1"), client=("10.0.0.1", 5000))
    assert sticky_key(full, STICKY) == "header:alice"
    assert sticky_key(full, ("cookie:session", "header:X-User-Id")) == "cookie:s1"
    assert sticky_key(full, ("client_ip", "header:X-User-Id")) == "client_ip:10.0.0.1"
    assert sticky_key(scope(("cookie", "session=s1"), client=("10.0.0.1", 1)), STICKY) == "cookie:s1"
    assert sticky_key(scope(client=("10.0.0.1", 1)), STICKY) == "client_ip:10.0.0.1"
    assert sticky_key(scope(), STICKY) is None


def test_a_header_value_and_a_cookie_value_do_not_collide() -> None:
    by_header = sticky_key(scope(("x-user-id", "42")), STICKY)
    by_cookie = sticky_key(scope(("cookie", "session=42")), STICKY)
    assert by_header is not None and by_cookie is not None and by_header != by_cookie


def test_header_names_match_case_insensitively() -> None:
    request = scope(("X-USER-ID", "bob"))
    assert sticky_key(request, ("header:x-user-id",)) == "header:bob"
    assert sticky_key(request, ("header:X-User-Id",)) == "header:bob"
    # renaming the header's case in the map keeps the user's bucket
    assert bucket("r", sticky_key(request, ("header:X-USER-ID",)) or "") == bucket("r", "header:bob")


def test_the_cookie_is_found_among_several_and_across_cookie_headers() -> None:
    one = scope(("cookie", "theme=dark; token=session; xsession=no; session=abc; lang=en"))
    assert sticky_key(one, ("cookie:session",)) == "cookie:abc"
    split = scope(("cookie", "theme=dark"), ("cookie", "lang=en;session=\"quoted\""))
    assert sticky_key(split, ("cookie:session",)) == "cookie:quoted"
    # cookie names are case-sensitive
    assert sticky_key(scope(("cookie", "SESSION=abc")), ("cookie:session",)) is None


@pytest.mark.parametrize(
    "header",
    [
        ";;; =; session",  # no value at all
        "garbage without equals",
        "a=b=c; session",
        '"; =;;=="; session=',
        "\x00\xff; session",
    ],
)
def test_a_malformed_cookie_header_does_not_raise(header: str) -> None:
    request = scope(("cookie", header), client=("192.0.2.7", 1))
    assert sticky_key(request, ("cookie:session", "client_ip")) == "client_ip:192.0.2.7"


def test_a_malformed_neighbour_does_not_hide_the_cookie() -> None:
    request = scope(("cookie", 'bad"cookie; =; weird;;session=alice; x'))
    assert sticky_key(request, ("cookie:session",)) == "cookie:alice"


def test_empty_values_count_as_missing() -> None:
    request = scope(
        ("x-user-id", ""), ("cookie", "session=; other=1"), ("cookie", 'session=""'), client=("", 0)
    )
    assert sticky_key(request, STICKY) is None
    assert sticky_key(scope(("x-user-id", "   "), ("cookie", "session=s9")), STICKY) == "cookie:s9"
    assert sticky_key(scope(("x-user-id", ""), ("x-user-id", "carol")), STICKY) == "header:carol"
    assert sticky_key(scope(("x-user-id", "dave"), ("x-user-id", "carol")), STICKY) == "header:dave"
    assert sticky_key({"type": "http", "headers": [], "client": None}, STICKY) is None


def test_unknown_sticky_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown sticky key"):
        sticky_key(scope(), ("query:user",))
