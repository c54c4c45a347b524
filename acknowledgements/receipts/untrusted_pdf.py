"""Reading a PDF anyone may upload with a bounded amount of work, whatever its bytes.

pyHanko's parser is pure Python, and nothing in it stops a crafted file of a few kilobytes from
keeping a web worker busy for minutes (measured with pyHanko 0.38 on a laptop core):

- five megabytes of `0 0 0 ...` in one array take over thirty seconds to parse;
- a cross-reference stream may declare a million entries in a 4 KB file (or any number, with
  widths of zero: no data at all): about 25 seconds per million;
- every object looked up in an object stream reads the stream's table from its start, so a form
  with one field per object costs time in the square of their number (2,000 fields: 20 s);
- the PNG predictor and ASCII85 decoders take one to two seconds per decoded megabyte.

So a file read here has a budget of steps: one per read from the file or from a decoded object
stream, one per entry of a cross-reference stream or of an object stream's table. When it runs
out, reading stops with `TooComplex`. It is a number of steps, not a time, so that the verdict
on a file is the same on every machine. Each object stream's table is read once. Only the
filters receipts use are decoded (none, or FlateDecode without parameters): anything else
is a file no receipt is.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic, misc
from pyhanko.pdf_utils import xref as pdf_xref
from pyhanko.pdf_utils.decode_limits import DecodeLimits, DecodePurpose
from pyhanko.pdf_utils.reader import PdfFileReader

# Steps a whole check takes (bench/verify.py measures them): about 12,000 for a receipt of a
# one-page policy, 90,000 for one of a 120 KB policy (a 320 KB receipt of 7,000 objects). Each
# step costs a few microseconds at most, so the budget bounds any upload to well under a second.
UPLOAD_STEPS = 200_000
# pyHanko takes about as long for one entry of a cross-reference stream as for this many reads.
XREF_ENTRY_STEPS = 4
# Certificates a seal and its timestamp may carry between them, and how many may share a name
# (a cross-signed certificate and its twin): see refuse_tangled_certificates.
MAX_CERTIFICATES = 10
MAX_CERTIFICATES_PER_NAME = 2


class TooComplex(Exception):
    """The file needs more reading than any receipt, or is built unlike one: it is not read on."""


class ParseBudget:
    """How many more steps reading a file may take; each step past the last raises TooComplex."""

    def __init__(self, steps: int) -> None:
        self.steps = self.left = steps

    @property
    def exhausted(self) -> bool:
        return self.left < 0

    @property
    def spent(self) -> int:
        return self.steps - self.left

    def spend(self, steps: int = 1) -> None:
        self.left -= steps
        if self.left < 0:
            raise TooComplex

    def refuse(self) -> None:
        """Stop reading a file built unlike any receipt, as if it had run out of steps."""
        self.left = -1
        raise TooComplex


class _CountedBytes(io.BytesIO):
    """Bytes whose every read is a step."""

    def __init__(self, data: bytes, budget: ParseBudget) -> None:
        super().__init__(data)
        self.budget = budget

    def read(self, size: int | None = -1, /) -> bytes:
        self.budget.spend()
        return super().read(size)


def _stored_as_receipts_are(stream: generic.StreamObject, budget: ParseBudget) -> None:
    """Refuse a stream receipts never have: only none or FlateDecode, without parameters."""
    filters = stream.get("/Filter")
    if isinstance(filters, generic.ArrayObject) and len(filters) == 1:
        filters = filters[0]
    if filters not in (None, "/FlateDecode") or stream.get("/DecodeParms") not in (None, {}):
        budget.refuse()


# The budget of the file being opened, for the cross-reference streams pyHanko reads while it
# opens the file: it reads them in PdfFileReader.__init__, through a module function that no
# subclass can reach. Outside BoundedPdfReader (when pyHanko seals a receipt), nothing changes.
_OPENING: ContextVar[ParseBudget | None] = ContextVar("untrusted_pdf_opening", default=None)
_parse_xref_stream = pdf_xref.parse_xref_stream


def _bounded_xref_stream(xref_stream: generic.StreamObject, strict: bool = True) -> Iterator[Any]:
    budget = _OPENING.get()
    if budget is None:
        return _parse_xref_stream(xref_stream, strict=strict)
    _stored_as_receipts_are(xref_stream, budget)  # before pyHanko decodes it
    return _counted(_parse_xref_stream(xref_stream, strict=strict), budget)


def _counted(entries: Iterator[Any], budget: ParseBudget) -> Iterator[Any]:
    for entry in entries:
        budget.spend(XREF_ENTRY_STEPS)
        yield entry


pdf_xref.parse_xref_stream = _bounded_xref_stream


class BoundedPdfReader(PdfFileReader):
    """A strict pyHanko reader whose reading is counted against `budget`."""

    def __init__(self, data: bytes, *, budget: ParseBudget, decode_limits: DecodeLimits) -> None:
        self.budget = budget
        # stream number -> (decoded data, offset of its first object, {object number: (index,
        # offset)} for the first time each number appears in the stream's table)
        self._object_streams: dict[int, tuple[bytes, int, dict[int, tuple[int, int]]]] = {}
        opening = _OPENING.set(budget)
        try:
            super().__init__(_CountedBytes(data, budget), strict=True, decode_limits=decode_limits)
        finally:
            _OPENING.reset(opening)

    def decoded(
        self, stream: generic.StreamObject, purpose: DecodePurpose = DecodePurpose.GENERIC
    ) -> bytes:
        """A stream's data, decoded only if it is stored as receipts store theirs."""
        _stored_as_receipts_are(stream, self.budget)
        return stream.read_data(purpose)

    def _get_object_from_stream(self, idnum: int, stmnum: int, idx: int) -> generic.PdfObject:
        # pyHanko's own, in strict mode, with the stream's table read only once.
        data, first, table = self._object_stream(stmnum)
        if table.get(idnum, (None, 0))[0] != idx:
            raise misc.PdfStrictReadError("Object not found at its index in the object stream.")
        stream = _CountedBytes(data, self.budget)
        stream.seek(first + table[idnum][1])
        try:
            obj = generic.read_object(stream, generic.Reference(idnum, 0, self))
        except misc.PdfReadError as error:
            raise misc.PdfStrictReadError(f"Cannot read object stream: {error}") from error
        if isinstance(obj, generic.StreamObject | generic.IndirectObject):
            raise misc.PdfStrictReadError("Encountered forbidden object type in object stream")
        return obj

    def _object_stream(self, stmnum: int) -> tuple[bytes, int, dict[int, tuple[int, int]]]:
        if stmnum not in self._object_streams:
            stream = generic.Reference(stmnum, 0, self).get_object()
            if not isinstance(stream, generic.StreamObject) or stream.get("/Type") != "/ObjStm":
                raise misc.PdfStrictReadError(f"Object {stmnum} is not an object stream.")
            count, first = stream.get("/N"), stream.get("/First")
            if not isinstance(count, int) or not isinstance(first, int) or count < 0:
                raise misc.PdfStrictReadError(f"Object stream {stmnum} lacks /N or /First.")
            data = self.decoded(stream, DecodePurpose.OBJECT_STREAM)
            self.budget.spend(count)
            # The table is pairs of integers (object number, offset) separated by white space.
            # pyHanko stops at a damaged pair; the objects listed before it stay readable.
            table: dict[int, tuple[int, int]] = {}
            tokens = data.split(maxsplit=2 * count)[: 2 * count]
            for index in range(len(tokens) // 2):
                number, offset = tokens[2 * index], tokens[2 * index + 1]
                if not (number.isdigit() and offset.isdigit()):
                    break
                table.setdefault(int(number), (index, int(offset)))
            self._object_streams[stmnum] = (data, first, table)
        return self._object_streams[stmnum]


def refuse_tangled_certificates(signature: Any, budget: ParseBudget) -> None:
    """Refuse a signature whose certificates would make checking its chain explode.

    pyhanko-certvalidator tries every path through the certificates a signature carries, and
    certificates that share a subject name are each a candidate issuer: eight of them, each
    naming the others, take 35 seconds. A receipt's seal and its timestamp carry a chain each,
    a few certificates with distinct names.
    """
    certificates: dict[bytes, Any] = {}
    try:
        for signed_data in _signed_data_of(signature):
            for choice in signed_data["certificates"] or []:
                certificates[choice.dump()] = choice.chosen
    except Exception:  # a signature that cannot be read is for pyHanko's validation to judge
        return
    if len(certificates) > MAX_CERTIFICATES:
        budget.refuse()
    subjects = Counter(
        certificate.subject.hashable
        for certificate in certificates.values()
        if isinstance(certificate, asn1_x509.Certificate)
    )
    if any(count > MAX_CERTIFICATES_PER_NAME for count in subjects.values()):
        budget.refuse()


def _signed_data_of(signature: Any) -> Iterator[Any]:
    """The seal's CMS signed data, then that of each timestamp token on it."""
    yield signature.signed_data
    for attribute in signature.signer_info["unsigned_attrs"] or []:
        if attribute["type"].native == "signature_time_stamp_token":
            for token in attribute["values"]:
                yield token["content"]
