"""``batch``: several method calls in one request (API.md §11)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints

from pryvrt import errors
from pryvrt.methods import registry
from pryvrt.methods.context import CallContext
from pryvrt.methods.params import Params
from pryvrt.methods.registry import Auth, method


class BatchCall(Params):
    method: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    params: dict[str, Any] = Field(default_factory=dict)


class BatchParams(Params):
    calls: list[BatchCall]


@method("batch", BatchParams, auth=Auth.ACCESS, errors=("PAYLOAD_TOO_LARGE",))
async def batch(ctx: CallContext, p: BatchParams) -> list[dict[str, Any]]:
    """Run calls in order with the caller's credential; one result or error per call.

    Each call is independent (its own transaction): a failed call does not undo the others.
    Changes of all successful calls are published once, after the last call.
    """
    limit = ctx.settings.max_batch_calls
    if len(p.calls) > limit:
        raise errors.PayloadTooLarge(f"at most {limit} calls per batch", {"limit": limit})
    results: list[dict[str, Any]] = []
    for item in p.calls:
        target = registry.REGISTRY.get(item.method)
        child = ctx.child()
        try:
            if target is None or item.method == "batch" or not target.socket:
                raise errors.UnknownMethod(f"method {item.method!r} cannot be called in a batch")
            result = await registry.call(child, item.method, item.params, publish=False)
        except errors.ApiError as exc:
            results.append({"error": exc.to_dict()})
        else:
            results.append({"result": result})
            ctx.changes |= child.changes
    return results
