"""docs/api.md is the generator's output, and documents every method and every error id.

In the spirit of Datasette's test_docs.py: what exists is documented, and the document
cannot drift, because it is written from the registry by ``scripts/gen-api-docs``."""

from __future__ import annotations

import re

from pryvrt import docs, errors
from pryvrt.methods.registry import REGISTRY
from pryvrt.transports.http import ROUTES, SERVICE_ROUTES, RouteTable

REGENERATE = f"run {docs.COMMAND} (python -m pryvrt.docs) and commit docs/api.md"


def sections() -> dict[str, str]:
    """Each method's section of the committed file, by method id."""
    text = docs.OUTPUT.read_text()
    parts = re.split(r"^#### `([\w.]+)`\n", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_the_committed_reference_is_what_the_generator_writes() -> None:
    assert docs.OUTPUT.read_text() == docs.render(), f"docs/api.md is out of date: {REGENERATE}"


def test_every_registered_method_has_its_section() -> None:
    documented = sections()
    missing = sorted(set(REGISTRY) - set(documented))
    assert not missing, f"methods missing from docs/api.md: {missing}: {REGENERATE}"
    assert set(documented) == set(REGISTRY)


def test_each_section_gives_routes_parameters_errors_and_an_example() -> None:
    for method_id, text in sections().items():
        method = REGISTRY[method_id]
        assert "- Credential: " in text, method_id
        for route in (*SERVICE_ROUTES, *ROUTES):
            if route.method_id == method_id:
                assert f"`{route.verb} " in text, (method_id, route)
        fields = method.params.model_json_schema().get("properties", {})
        for name in fields:
            assert f"| `{name}` |" in text, (method_id, name)
        if not fields:
            assert "No parameters." in text, method_id
        for error_id in method.errors:
            assert f"[`{error_id}`](#{error_id.lower()})" in text, (method_id, error_id)
        assert "Example:\n\n```sh\ncurl -s " in text, method_id
        if method.socket:
            assert f'socket.emit("{method_id}", ' in text, method_id


def test_every_error_id_is_in_the_errors_table() -> None:
    text = docs.OUTPUT.read_text()
    ids = {
        c.id
        for c in vars(errors).values()
        if isinstance(c, type) and issubclass(c, errors.ApiError) and c is not errors.ApiError
    }
    assert len(ids) > 25
    for error_id in ids:
        assert f'<a id="{error_id.lower()}"></a>`{error_id}`' in text, (error_id, REGENERATE)


def test_the_examples_call_the_routes_of_their_method() -> None:
    """Each curl example's path resolves, by the server's own route table, to its method."""
    table = RouteTable(ROUTES)
    for method_id, text in sections().items():
        [command] = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
        match = re.search(r"curl -s (?:-X (\w+) )?\"?http://127\.0\.0\.1:3000([^\s\"?]*)", command)
        assert match, (method_id, command)
        verb, path = match.group(1) or "GET", match.group(2)
        service, _, _ = RouteTable(SERVICE_ROUTES).match(verb, [s for s in path.split("/") if s])
        if service is not None and service.method_id == method_id:
            continue
        assert path.startswith("/alice"), (method_id, path)
        segments = [s for s in path.removeprefix("/alice").split("/") if s]
        route, _, _ = table.match(verb, segments)
        assert route is not None and route.method_id == method_id, (method_id, verb, path)


def test_the_generator_names_its_command_when_the_file_is_stale(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    stale = tmp_path / "api.md"
    stale.write_text("old\n")
    monkeypatch.setattr(docs, "OUTPUT", stale)
    assert docs.main(["--check"]) == 1
    assert stale.read_text() == "old\n"
    assert docs.main([]) == 0
    assert docs.main(["--check"]) == 0
