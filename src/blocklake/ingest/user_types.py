"""The type of each field of a tenant's user-defined event types, fixed by its first declaration.

A later version of an application may add fields to a type (new columns, NULL in older rows),
never change one's type: ``order_id`` declared ``str`` after ``i64`` would turn the column of
every version's rows into text (``sum(amount)`` failing on the older ones). Stream registration
refuses such a layout (400 naming the field and both types); a retyped field takes a new name.

The first declaration of each field is one small object, ``user-types/tenant=T/<type>/<field>``
holding its wire type, written with a conditional put (first writer wins, concurrent
registrations included) in the blob store beside the blocks: no table to add, no database to
wake. Known fields are remembered per process (each process of an application registers the
same types again).
"""

from __future__ import annotations

import threading
import weakref

from blocklake.errors import ClientError
from blocklake.format.schema import FIRST_USER_TYPE_ID, USER_CORRELATION_FIELDS, Layout
from blocklake.stores.blobs import BlobNotFound, BlobStore

USER_TYPES_PREFIX = "user-types/"
MAX_REMEMBERED = 100_000
"""Field types remembered per process before the memory is cleared (read again on use)."""

_known: weakref.WeakKeyDictionary[BlobStore, dict[tuple[str, str, str], str]] = (
    weakref.WeakKeyDictionary()
)
"""Field types known, per blob store (one in production; tests make many)."""
_known_lock = threading.Lock()


def field_key(tenant: str, type_name: str, field_name: str) -> str:
    return f"{USER_TYPES_PREFIX}tenant={tenant}/{type_name}/{field_name}"


def check_field_types(blobs: BlobStore, tenant: str, layout: Layout) -> None:
    """Refuses (400 ``invalid_layout``) a user-defined type of ``layout`` whose field the
    tenant declared before with another type; records the types of the fields never seen.
    Every field is checked before any is recorded: a refused layout records nothing."""
    fields = [
        (event_type.name, field.name, field.type)
        for event_type in layout.values()
        if event_type.id >= FIRST_USER_TYPE_ID
        for field in event_type.fields[1:]  # ticks first, always i64
        if field.name not in USER_CORRELATION_FIELDS
    ]
    unknown = []
    for type_name, field_name, wire in fields:
        known = _known_type(blobs, tenant, type_name, field_name)
        if known is None:
            unknown.append((type_name, field_name, wire))
        else:
            _check(type_name, field_name, wire, known)
    for type_name, field_name, wire in unknown:
        key = field_key(tenant, type_name, field_name)
        if not blobs.put_if_absent(key, wire.encode()):  # declared meanwhile: theirs holds
            _check(type_name, field_name, wire, blobs.get(key).decode())
        _remember(blobs, tenant, type_name, field_name, wire)


def _known_type(blobs: BlobStore, tenant: str, type_name: str, field_name: str) -> str | None:
    known = _known.get(blobs, {}).get((tenant, type_name, field_name))
    if known is not None:
        return known
    try:
        known = blobs.get(field_key(tenant, type_name, field_name)).decode()
    except BlobNotFound:
        return None
    _remember(blobs, tenant, type_name, field_name, known)
    return known


def _remember(blobs: BlobStore, tenant: str, type_name: str, field_name: str, wire: str) -> None:
    with _known_lock:
        known = _known.setdefault(blobs, {})
        if len(known) >= MAX_REMEMBERED:
            known.clear()
        known[(tenant, type_name, field_name)] = wire


def _check(type_name: str, field_name: str, wire: str, known: str) -> None:
    if known != wire:
        raise ClientError(
            400,
            "invalid_layout",
            f"field 'layout': event type {type_name!r}: field {field_name!r} has type "
            f"{known!r} for this tenant (its first declaration), not {wire!r}: a field keeps "
            "its type across versions; give the retyped field a new name",
        )
