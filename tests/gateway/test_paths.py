import pytest

from gateway.paths import Kind, PathError, parse_template


@pytest.mark.parametrize(
    ("source", "shape"),
    [
        ("/api/users/<int:user_id>", "/api/users/{int}"),
        ("/api/users/{user_id:int}", "/api/users/{int}"),
        ("/api/users/<user_id>", "/api/users/{string}"),
        ("/api/users/{user_id}", "/api/users/{string}"),
        ("/api/users/<string(length=2):code>", "/api/users/{string}"),
        ("/p/<float:x>", "/p/{float}"),
        ("/u/<uuid:u>", "/u/{uuid}"),
        ("/files/<path:rest>", "/files/{path}"),
        ("/files/{rest:path}", "/files/{path}"),
        ("/export/<name>.csv", "/export/{string}.csv"),
        ("/", "/"),
    ],
)
def test_both_syntaxes_parse_to_one_shape(source: str, shape: str) -> None:
    assert parse_template(source).shape == shape


def test_segment_kinds_and_static_detection() -> None:
    t = parse_template("/api/users/<int:id>/orders/<path:rest>")
    assert [s.kind for s in t.segments] == [Kind.STATIC, Kind.STATIC, Kind.TYPED, Kind.STATIC, Kind.PATH]
    assert not t.is_static
    assert parse_template("/api/orders/export.csv").is_static


def test_loose_shape_forgets_parameter_types() -> None:
    assert parse_template("/a/<int:x>").loose_shape == parse_template("/a/{x}").loose_shape


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("api/users", "must start with '/'"),
        ("/a/<intt:x>", "unknown converter 'intt' (known: int, float, uuid, string, path)"),
        ("/a/<int:x", "malformed parameter"),
        ("/a/{x", "malformed parameter"),
        ("/a/<path:x>/<y>", "no parameter may follow a path converter"),
        ("/a/pre<path:x>", "must fill its whole segment"),
        ("/a b", "must not contain spaces"),
        ("/a?b=1", "'?'"),
    ],
)
def test_bad_templates_say_what_is_wrong(source: str, message: str) -> None:
    with pytest.raises(PathError) as err:
        parse_template(source)
    assert message in str(err.value)
    assert repr(source) in str(err.value)
