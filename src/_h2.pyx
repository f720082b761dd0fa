# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""A sans-I/O HTTP/2 + gRPC client connection core (compiled as ``fastetcd._h2``).

It does no I/O: the transport (``fastetcd._native``) feeds it the bytes read from the
socket (:meth:`H2Connection.receive`) and writes what :meth:`H2Connection.data_to_send`
returns. Requests are gRPC calls: :meth:`H2Connection.start` opens a stream with a pre-
encoded constant header block per method path and the request message; responses are
delivered to the stream's *handle* (any object with ``set_result``, ``set_exception``
and, for streaming calls, ``push``) as they complete. Errors are ``fastetcd.errors``
instances built by ``from_status`` exactly as the grpcio transport builds them; bad
input from the network closes the connection (GOAWAY) and fails the calls on it, and
``receive`` never raises.

The asyncio client's unary calls (``AsyncCall``, in ``_h2_asyncio.pxi``) are streams of
this core that are also their own futures, so a call costs one object.

Response header blocks are decoded by a full HPACK decoder (dynamic table, Huffman); a
block made only of one-byte indexed fields cannot change the dynamic table, so its
digest is memoized by its bytes until the table next changes.
"""

cimport cython
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from libc.stdint cimport int64_t, uint32_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy, memmove

from asyncio import InvalidStateError as _AsyncInvalidState
from collections import deque
from urllib.parse import unquote_to_bytes

from fastetcd.errors import (
    CancelledError,
    InternalError,
    ResourceExhaustedError,
    UnavailableError,
    from_status,
)

include "_h2_huffman.pxi"

__all__ = [
    "H2Connection",
    "H2Stream",
    "HpackDecoder",
    "encode_request_headers",
    "grpc_timeout",
    "huffman_decode",
    "STATIC_TABLE",
    "PREFACE",
    "PING_ACK_HOLD",
]

# --------------------------------------------------------------------------- constants

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

#: How long a driver that sets ``H2Connection.hold_ping_acks`` may hold the ack of a
#: server's PING while calls are open, in seconds (see ``H2Connection._on_ping``): far
#: below any keepalive timeout (etcd's default is 20 s), long enough that a busy
#: connection answers, and so is sent, a few PINGs a second instead of one per write.
PING_ACK_HOLD = 0.01

cdef enum:
    F_DATA = 0
    F_HEADERS = 1
    F_PRIORITY = 2
    F_RST_STREAM = 3
    F_SETTINGS = 4
    F_PUSH_PROMISE = 5
    F_PING = 6
    F_GOAWAY = 7
    F_WINDOW_UPDATE = 8
    F_CONTINUATION = 9
    # flags
    FLAG_END_STREAM = 0x1
    FLAG_ACK = 0x1
    FLAG_END_HEADERS = 0x4
    FLAG_PADDED = 0x8
    FLAG_PRIORITY = 0x20
    # error codes
    E_NO_ERROR = 0
    E_PROTOCOL = 1
    E_INTERNAL = 2
    E_FLOW_CONTROL = 3
    E_STREAM_CLOSED = 5
    E_FRAME_SIZE = 6
    E_REFUSED_STREAM = 7
    E_CANCEL = 8
    E_COMPRESSION = 9
    E_ENHANCE_YOUR_CALM = 11
    E_INADEQUATE_SECURITY = 12
    # settings
    S_HEADER_TABLE_SIZE = 1
    S_ENABLE_PUSH = 2
    S_MAX_CONCURRENT_STREAMS = 3
    S_INITIAL_WINDOW_SIZE = 4
    S_MAX_FRAME_SIZE = 5
    S_MAX_HEADER_LIST_SIZE = 6
    # windows and limits
    MAX_WINDOW = 2147483647
    DEFAULT_WINDOW = 65535
    OUR_MAX_FRAME = 16384
    # Our receive windows: large, so that the server is never throttled by us in
    # practice (streaming calls give window back as the caller takes messages).
    OUR_STREAM_WINDOW = 16777216
    OUR_CONN_WINDOW = 1073741824
    # The output buffer is freed after a write when it has grown past this.
    OUT_KEEP = 1048576
    # Largest header block (and decoded header list) accepted from the server.
    MAX_HEADER_LIST = 1048576
    # The read buffer of get_buffer()/buffer_updated(): a read goes into its free end,
    # which is made at least READ_MIN_FREE bytes by moving the one incomplete frame that
    # may be left (at most 9 + OUR_MAX_FRAME bytes) to the front.
    READ_BUFFER = 262144
    READ_MIN_FREE = 65536
    HPACK_TABLE_SIZE = 4096
    MEMO_LIMIT = 512
    # stream states
    ST_QUEUED = 0
    ST_OPEN = 1
    ST_HEADERS = 2
    ST_CLOSED = 3
    N_STATIC = 61

_ERROR_NAMES = {
    0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
    4: "SETTINGS_TIMEOUT", 5: "STREAM_CLOSED", 6: "FRAME_SIZE_ERROR",
    7: "REFUSED_STREAM",
    8: "CANCEL", 9: "COMPRESSION_ERROR", 10: "CONNECT_ERROR", 11: "ENHANCE_YOUR_CALM",
    12: "INADEQUATE_SECURITY", 13: "HTTP_1_1_REQUIRED",
}

# gRPC status for an RST_STREAM error code (gRPC's PROTOCOL-HTTP2.md).
_RST_STATUS = {7: 14, 8: 1, 11: 8, 12: 7}
# gRPC status for an HTTP status without grpc-status
# (gRPC's http-grpc-status-mapping.md).
_HTTP_STATUS = {400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14}

STATIC_TABLE = (
    (b":authority", b""), (b":method", b"GET"), (b":method", b"POST"), (b":path", b"/"),
    (b":path", b"/index.html"), (b":scheme", b"http"), (b":scheme", b"https"),
    (b":status", b"200"), (b":status", b"204"), (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"), (b":status", b"404"), (b":status", b"500"),
    (b"accept-charset", b""), (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""), (b"accept-ranges", b""), (b"accept", b""),
    (b"access-control-allow-origin", b""), (b"age", b""), (b"allow", b""),
    (b"authorization", b""), (b"cache-control", b""), (b"content-disposition", b""),
    (b"content-encoding", b""), (b"content-language", b""), (b"content-length", b""),
    (b"content-location", b""), (b"content-range", b""), (b"content-type", b""),
    (b"cookie", b""), (b"date", b""), (b"etag", b""), (b"expect", b""),
    (b"expires", b""),
    (b"from", b""), (b"host", b""), (b"if-match", b""), (b"if-modified-since", b""),
    (b"if-none-match", b""), (b"if-range", b""), (b"if-unmodified-since", b""),
    (b"last-modified", b""), (b"link", b""), (b"location", b""), (b"max-forwards", b""),
    (b"proxy-authenticate", b""), (b"proxy-authorization", b""), (b"range", b""),
    (b"referer", b""), (b"refresh", b""), (b"retry-after", b""), (b"server", b""),
    (b"set-cookie", b""), (b"strict-transport-security", b""),
    (b"transfer-encoding", b""), (b"user-agent", b""), (b"vary", b""), (b"via", b""),
    (b"www-authenticate", b""),
)


class _ConnectionError(Exception):
    """Internal: unwinds the frame parser on a connection error (never escapes
    receive)."""

    def __init__(self, int code, str message):
        super().__init__(message)
        self.h2_code = code


cdef object _hpack_error(str message):
    return _ConnectionError(E_COMPRESSION, "HPACK: " + message)


# ----------------------------------------------------------------------------- Huffman

# The decoding tree: 256 internal nodes; child[node*2 + bit] is 0 (none: the root is
# never a child), a positive internal node, or -(symbol + 1) for a leaf.
cdef int _huff_child[512]


cdef int _build_huffman_tree() except -1:
    cdef int nodes = 1
    cdef int sym, i, node, bit, nxt, length
    cdef unsigned int code
    for i in range(512):
        _huff_child[i] = 0
    for sym in range(257):
        code = _HUFF_CODES[sym]
        length = _HUFF_LENS[sym]
        node = 0
        for i in range(length - 1, -1, -1):
            bit = (code >> i) & 1
            if i == 0:
                _huff_child[node * 2 + bit] = -(sym + 1)
            else:
                nxt = _huff_child[node * 2 + bit]
                if nxt == 0:
                    nxt = nodes
                    nodes += 1
                    _huff_child[node * 2 + bit] = nxt
                node = nxt
    return 0


_build_huffman_tree()


cdef bytes _huffman_decode(const unsigned char* data, Py_ssize_t length):
    cdef Py_ssize_t cap = length * 8 // 5 + 1
    cdef unsigned char* out = <unsigned char*>malloc(cap)
    cdef Py_ssize_t n = 0, i
    cdef int node = 0, bits_since = 0, bit, nxt, sym, shift
    cdef bint ones = True
    cdef unsigned char byte
    if out == NULL:
        raise MemoryError()
    try:
        for i in range(length):
            byte = data[i]
            for shift in range(7, -1, -1):
                bit = (byte >> shift) & 1
                nxt = _huff_child[node * 2 + bit]
                if nxt < 0:
                    sym = -nxt - 1
                    if sym == 256:
                        raise _hpack_error("EOS symbol in a Huffman string")
                    out[n] = <unsigned char>sym
                    n += 1
                    node = 0
                    bits_since = 0
                    ones = True
                elif nxt == 0:
                    raise _hpack_error("invalid Huffman code")
                else:
                    node = nxt
                    bits_since += 1
                    if bit == 0:
                        ones = False
        if bits_since > 7 or not ones:
            raise _hpack_error("invalid Huffman padding")
        return PyBytes_FromStringAndSize(<char*>out, n)
    finally:
        free(out)


def huffman_decode(bytes data):
    """Decode an HPACK Huffman string (raises ``InternalError`` if it is not valid)."""
    try:
        return _huffman_decode(<const unsigned char*>PyBytes_AS_STRING(data), len(data))
    except _ConnectionError as exc:
        raise InternalError(str(exc)) from None


# ----------------------------------------------------------------------- HPACK decoder

cdef inline Py_ssize_t _read_int(
    const unsigned char* p, Py_ssize_t* pos, Py_ssize_t end, int prefix_bits
) except -1:
    cdef Py_ssize_t mask = (1 << prefix_bits) - 1
    cdef Py_ssize_t value = p[pos[0]] & mask
    cdef int shift = 0
    cdef unsigned char b
    pos[0] += 1
    if value < mask:
        return value
    while True:
        if pos[0] >= end:
            raise _hpack_error("truncated integer")
        if shift > 21:
            raise _hpack_error("integer too large")
        b = p[pos[0]]
        pos[0] += 1
        value += (<Py_ssize_t>(b & 0x7F)) << shift
        shift += 7
        if not (b & 0x80):
            return value


cdef bytes _read_string(const unsigned char* p, Py_ssize_t* pos, Py_ssize_t end):
    if pos[0] >= end:
        raise _hpack_error("truncated string")
    cdef bint huffman = (p[pos[0]] & 0x80) != 0
    cdef Py_ssize_t length = _read_int(p, pos, end, 7)
    cdef Py_ssize_t start = pos[0]
    if length > end - start:
        raise _hpack_error("string runs past the end of the block")
    pos[0] = start + length
    if huffman:
        return _huffman_decode(p + start, length)
    return PyBytes_FromStringAndSize(<char*>p + start, length)


cdef class HpackDecoder:
    """An HPACK (RFC 7541) decoder: static and dynamic tables, Huffman strings.

    ``decode(block)`` returns the header list as ``[(name, value), ...]`` (bytes) or
    raises ``InternalError`` (a COMPRESSION_ERROR: the connection must be closed).
    ``generation`` changes whenever the dynamic table does.
    """

    cdef list entries  # dynamic table, newest last
    cdef Py_ssize_t size
    cdef readonly Py_ssize_t max_size
    cdef Py_ssize_t max_allowed
    cdef Py_ssize_t max_list
    cdef readonly unsigned long generation

    def __init__(self, Py_ssize_t max_table_size=HPACK_TABLE_SIZE,
                 Py_ssize_t max_header_list_size=MAX_HEADER_LIST):
        self.entries = []
        self.size = 0
        self.max_size = max_table_size
        self.max_allowed = max_table_size
        self.max_list = max_header_list_size
        self.generation = 0

    @property
    def table(self):
        """The dynamic table, newest entry first (for tests)."""
        return list(reversed(self.entries))

    cdef void _evict(self, Py_ssize_t limit):
        cdef tuple entry
        while self.size > limit and self.entries:
            entry = self.entries.pop(0)
            self.size -= len(<bytes>entry[0]) + len(<bytes>entry[1]) + 32

    cdef void _add(self, bytes name, bytes value):
        cdef Py_ssize_t entry_size = len(name) + len(value) + 32
        self.generation += 1
        if entry_size > self.max_size:
            self.entries.clear()
            self.size = 0
            return
        self._evict(self.max_size - entry_size)
        self.entries.append((name, value))
        self.size += entry_size

    cdef tuple _get(self, Py_ssize_t index):
        cdef Py_ssize_t dyn
        if index <= 0:
            raise _hpack_error("index 0")
        if index <= N_STATIC:
            return <tuple>STATIC_TABLE[index - 1]
        dyn = index - N_STATIC
        if dyn > len(self.entries):
            raise _hpack_error(f"index {index} is not in the table")
        return <tuple>self.entries[len(self.entries) - dyn]

    cdef list _decode(self, bytes block):
        cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(block)
        cdef Py_ssize_t end = PyBytes_GET_SIZE(block)
        cdef Py_ssize_t pos = 0, index, new_size, total = 0
        cdef unsigned char b
        cdef list headers = []
        cdef bytes name, value
        cdef tuple entry
        cdef bint fields_seen = False
        while pos < end:
            b = p[pos]
            if b & 0x80:  # indexed field
                index = _read_int(p, &pos, end, 7)
                entry = self._get(index)
                headers.append(entry)
                name = <bytes>entry[0]
                value = <bytes>entry[1]
            elif b & 0x40:  # literal with incremental indexing
                index = _read_int(p, &pos, end, 6)
                if index:
                    name = <bytes>self._get(index)[0]
                else:
                    name = _read_string(p, &pos, end)
                value = _read_string(p, &pos, end)
                self._add(name, value)
                headers.append((name, value))
            elif b & 0x20:  # dynamic table size update
                if fields_seen:
                    raise _hpack_error("table size update after a header field")
                new_size = _read_int(p, &pos, end, 5)
                if new_size > self.max_allowed:
                    raise _hpack_error(
                        f"table size update to {new_size} above the limit"
                    )
                self.max_size = new_size
                self._evict(new_size)
                self.generation += 1
                continue
            else:  # literal without indexing / never indexed
                index = _read_int(p, &pos, end, 4)
                if index:
                    name = <bytes>self._get(index)[0]
                else:
                    name = _read_string(p, &pos, end)
                value = _read_string(p, &pos, end)
                headers.append((name, value))
            fields_seen = True
            total += len(name) + len(value) + 32
            if total > self.max_list:
                raise _hpack_error("header list too large")
        return headers

    def decode(self, block):
        """Decode one complete header block into ``[(name, value), ...]``."""
        try:
            return self._decode(bytes(block))
        except _ConnectionError as exc:
            raise InternalError(str(exc)) from None


# --------------------------------------------------------------------- request headers

cdef bytes _enc_int(Py_ssize_t value, int prefix_bits, int first):
    cdef Py_ssize_t mask = (1 << prefix_bits) - 1
    cdef bytearray out = bytearray()
    if value < mask:
        out.append(first | value)
        return bytes(out)
    out.append(first | mask)
    value -= mask
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


cdef bytes _enc_str(bytes data):
    return _enc_int(len(data), 7, 0) + data


cdef bytes _literal(int name_index, bytes value):
    """A literal field without indexing, name from the static table."""
    return _enc_int(name_index, 4, 0) + _enc_str(value)


cdef bytes _literal_new(bytes name, bytes value):
    """A literal field without indexing, new name."""
    return b"\x00" + _enc_str(name) + _enc_str(value)


def grpc_timeout(double seconds):
    """The ``grpc-timeout`` value for a deadline ``seconds`` away (at most 8 digits)."""
    cdef double value
    if seconds < 0:
        seconds = 0
    for unit, scale in (
        (b"u", 1e6), (b"m", 1e3), (b"S", 1.0), (b"M", 1 / 60.0), (b"H", 1 / 3600.0)
    ):
        value = seconds * scale
        if value < 1e8:
            return str(max(1, int(value + 0.999999))).encode() + unit
    return b"99999999H"


def encode_request_headers(str path, str authority, bint secure=False):
    """The constant part of a gRPC request's header block for ``path``: HPACK
    static-table references and literals without indexing (so the server's dynamic table
    is never used)."""
    return (
        b"\x83"  # :method POST
        + (b"\x87" if secure else b"\x86")  # :scheme https / http
        + _literal(4, path.encode())  # :path
        + _literal(1, authority.encode())  # :authority
        + _literal(31, b"application/grpc")  # content-type
        + _literal_new(b"te", b"trailers")
        + _literal(58, b"fastetcd-native/0.1")  # user-agent
    )


_RESERVED = (b"te", b"content-type", b"grpc-timeout")


cdef bytes _metadata_block(object metadata):
    cdef list parts = []
    for key, value in metadata:
        name = (<str>key).lower().encode("ascii")
        if not name or name[:1] == b":" or name in _RESERVED:
            raise ValueError(f"metadata key {key!r} is reserved or empty")
        if isinstance(value, str):
            data = (<str>value).encode("utf-8")
        else:
            data = bytes(value)
        if b"\r" in data or b"\n" in data or b"\x00" in data:
            raise ValueError(f"metadata value of {key!r} contains a line break or NUL")
        parts.append(_literal_new(name, data))
    return b"".join(parts)


# -------------------------------------------------------------------- response headers

cdef class _Head:
    """What a transport needs from a response header block."""

    cdef int http_status
    cdef int grpc_status
    cdef str grpc_message
    cdef bint grpc_content_type


cdef int _parse_status(bytes value):
    cdef Py_ssize_t i, n = len(value)
    cdef int result = 0
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(value)
    if n == 0 or n > 9:
        return -2
    for i in range(n):
        if p[i] < 48 or p[i] > 57:
            return -2
        result = result * 10 + (p[i] - 48)
    return result


cdef _Head _digest(list headers):
    cdef _Head head = _Head.__new__(_Head)
    cdef tuple field
    cdef bytes name, value
    head.http_status = -1
    head.grpc_status = -1
    head.grpc_message = ""
    head.grpc_content_type = False
    for field in headers:
        name = <bytes>field[0]
        value = <bytes>field[1]
        if name == b":status":
            head.http_status = _parse_status(value)
        elif name == b"grpc-status":
            head.grpc_status = _parse_status(value)
            if head.grpc_status < 0:
                head.grpc_status = 2  # UNKNOWN
        elif name == b"grpc-message":
            head.grpc_message = unquote_to_bytes(value).decode("utf-8", "replace")
        elif name == b"content-type":
            head.grpc_content_type = value.startswith(b"application/grpc")
    return head


cdef inline bint _indexed_only(bytes block):
    """True when the block is a sequence of one-byte indexed fields (0x81..0xfe)."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(block)
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(block)
    for i in range(n):
        if p[i] < 0x81 or p[i] == 0xFF:
            return False
    return n > 0


# ------------------------------------------------------------------------------ errors

cdef object _unavailable(str message, object sent):
    exc = UnavailableError(message)
    if sent is not None:
        exc.sent = sent
    return exc


cdef object _status_error(int code, str message):
    return from_status(code, message)


cdef inline void _frame_header(unsigned char* p, Py_ssize_t length, int ftype, int flags,
                               uint32_t sid) noexcept:
    # the 9 bytes of an HTTP/2 frame header
    p[0] = (length >> 16) & 0xFF
    p[1] = (length >> 8) & 0xFF
    p[2] = length & 0xFF
    p[3] = ftype
    p[4] = flags
    p[5] = (sid >> 24) & 0x7F
    p[6] = (sid >> 16) & 0xFF
    p[7] = (sid >> 8) & 0xFF
    p[8] = sid & 0xFF


# ----------------------------------------------------------------------------- streams

cdef class H2Stream:
    """One gRPC call on a connection: ``id`` is 0 while it waits for a free stream
    slot."""

    cdef readonly uint32_t id
    cdef public object handle
    cdef readonly bint unary
    cdef readonly int state
    cdef bint local_closed  # END_STREAM written
    cdef bint end_pending  # END_STREAM wanted once sendbuf drains
    cdef int64_t send_window
    cdef int64_t recv_window
    cdef int64_t recv_unacked  # bytes received and consumed but not yet given back
    cdef bytearray sendbuf
    cdef bytes header_block
    cdef bytearray rbuf  # the start of a message prefix split across frames (< 5 bytes)
    cdef object partial  # a message split across frames: bytes of its final size
    cdef Py_ssize_t need  # its length
    cdef Py_ssize_t filled  # and how much of it has arrived
    cdef Py_ssize_t credit  # window given back ahead of consumed() (split messages)
    cdef object message
    cdef int nmessages
    cdef bint blocked

    def __repr__(self):
        return f"<H2Stream id={self.id} state={self.state} unary={self.unary}>"

    cdef bint _parse_now(self, const unsigned char* p, Py_ssize_t n) except -1:
        """A unary call's response message, ``n`` bytes at ``p`` in the read buffer:
        True if the stream parsed it there (it then keeps the result, or the parse error,
        until the trailers tell how the call ended); False to have it copied into bytes.
        (Overridden by :class:`AsyncCall`.)"""
        return False

    cdef void _resolve(self, object result, object exc):
        """The call ended: ``result`` (exc None) or ``exc`` goes to the handle. (The
        asyncio driver's :class:`AsyncCall`, a stream that is its own future, overrides
        this.)"""
        try:
            if exc is None:
                self.handle.set_result(result)
            else:
                self.handle.set_exception(exc)
        except _AsyncInvalidState:  # the caller gave up on it (a cancelled future)
            pass


def _stream_id(H2Stream s):
    return s.id


cdef class H2Connection:
    """The client side of one HTTP/2 connection carrying gRPC calls (sans I/O)."""

    # the bytes to send, until data_to_send() takes them: a C buffer that keeps its size
    # from one write to the next (a bytearray emptied by each write grew again by reallocs)
    cdef unsigned char* out
    cdef Py_ssize_t out_len
    cdef Py_ssize_t out_cap
    cdef bytes inbuf
    cdef bytearray rbuf  # get_buffer()'s read buffer (None until first used)
    cdef object rview  # a memoryview of it
    cdef Py_ssize_t rstart, rend  # its bytes not parsed yet: rbuf[rstart:rend]
    # The open streams, found by id: an open-addressing table (linear probing, at most
    # half full) in a list, so that no int object is made for an id (a dict would make
    # one per insert, look-up and removal). A stream's home slot is (id >> 1) & mask:
    # ids are consecutive odd numbers, so the streams in flight take consecutive slots.
    cdef list slots
    cdef size_t slot_mask
    cdef Py_ssize_t nopen
    cdef Py_ssize_t displaced  # streams not in their home slot (0: removals need no shift)
    cdef object queued
    cdef list blocked
    cdef uint32_t next_id
    cdef readonly uint32_t max_started_id
    # public: a transport whose write of data_to_send() failed before any byte left
    # puts the previous value back, so fail_all() knows those requests were not sent
    cdef public uint32_t flushed_max_id
    cdef int64_t conn_send_window
    cdef int64_t conn_recv_window
    cdef int64_t conn_recv_unacked
    cdef int64_t peer_initial_window
    cdef readonly Py_ssize_t peer_max_frame
    cdef readonly int64_t peer_max_streams
    cdef readonly Py_ssize_t max_recv_bytes
    cdef HpackDecoder decoder
    cdef dict memo
    cdef unsigned long memo_gen
    cdef H2Stream last_stream  # the open stream a frame last went to (its next frame
    # usually goes there too: headers, data, trailers)
    # The last two memoized blocks a response used (typically its headers and trailers),
    # matched against a frame's bytes before any object is made for them.
    cdef bytes recent0
    cdef bytes recent1
    cdef _Head recent_head0
    cdef _Head recent_head1
    cdef unsigned long recent_gen
    cdef dict templates
    cdef str last_path  # the path last started, and its template (calls in a row are
    cdef bytes last_template  # usually to one method: no dict look-up for them)
    cdef dict timeouts
    cdef str authority
    cdef bint secure
    cdef bytes cont_block
    cdef uint32_t cont_stream
    cdef bint cont_end_stream
    cdef bint expecting_cont
    cdef readonly bint goaway_received
    cdef readonly uint32_t goaway_last_id
    cdef readonly bint closed
    cdef readonly object error
    cdef readonly bint settings_received
    cdef readonly unsigned long pings_acked
    # Answering the server's PINGs: see _on_ping. hold_ping_acks is set by a driver that
    # releases a held ack within PING_ACK_HOLD seconds (release_ping).
    cdef public bint hold_ping_acks
    cdef readonly bint ping_held
    cdef unsigned char held_ping[8]
    cdef readonly unsigned long pings_received
    cdef readonly unsigned long ping_acks_sent
    cdef readonly unsigned long memo_hits
    cdef readonly unsigned long full_decodes

    def __init__(self, str authority, bint secure=False,
                 Py_ssize_t max_recv_bytes=2**31 - 1):
        self.out_len = 0
        self.inbuf = b""
        self.rbuf = None
        self.rview = None
        self.rstart = self.rend = 0
        self.slots = [None] * 256
        self.slot_mask = 255
        self.nopen = 0
        self.displaced = 0
        self.queued = deque()
        self.blocked = []
        self.next_id = 1
        self.max_started_id = 0
        self.flushed_max_id = 0
        self.conn_send_window = DEFAULT_WINDOW
        self.conn_recv_window = OUR_CONN_WINDOW
        self.conn_recv_unacked = 0
        self.peer_initial_window = DEFAULT_WINDOW
        self.peer_max_frame = 16384
        self.peer_max_streams = 2**31
        self.max_recv_bytes = max_recv_bytes
        self.decoder = HpackDecoder()
        self.memo = {}
        self.memo_gen = 0
        self.last_stream = None
        self.recent0 = None
        self.recent1 = None
        self.recent_head0 = None
        self.recent_head1 = None
        self.recent_gen = 0
        self.templates = {}
        self.timeouts = {}
        self.authority = authority
        self.secure = secure
        self.cont_block = b""
        self.expecting_cont = False
        self.goaway_received = False
        self.closed = False
        self.error = None
        self.settings_received = False
        self.pings_acked = 0
        self.hold_ping_acks = False
        self.ping_held = False
        self.pings_received = 0
        self.ping_acks_sent = 0
        self.memo_hits = 0
        self.full_decodes = 0

    # -------------------------------------------------------------- output

    def __dealloc__(self):
        free(self.out)

    cdef unsigned char* _reserve(self, Py_ssize_t n) except NULL:
        """Append ``n`` bytes to the output, to be written at the pointer returned."""
        cdef Py_ssize_t need = self.out_len + n, cap
        cdef unsigned char* grown
        if need > self.out_cap:
            cap = max(need, 2 * self.out_cap, 4096)
            grown = <unsigned char*>realloc(self.out, cap)
            if grown == NULL:
                raise MemoryError()
            self.out = grown
            self.out_cap = cap
        grown = self.out + self.out_len
        self.out_len = need
        return grown

    cdef inline int _frame(self, Py_ssize_t length, int ftype, int flags,
                           uint32_t sid) except -1:
        _frame_header(self._reserve(9), length, ftype, flags, sid)
        return 0

    cdef inline int _write(self, const char* data, Py_ssize_t n) except -1:
        memcpy(self._reserve(n), data, n)
        return 0

    cdef void _u32(self, uint32_t v):
        cdef unsigned char b[4]
        b[0] = (v >> 24) & 0xFF
        b[1] = (v >> 16) & 0xFF
        b[2] = (v >> 8) & 0xFF
        b[3] = v & 0xFF
        self._write(<char*>b, 4)

    cdef void _window_update(self, uint32_t sid, uint32_t increment):
        self._frame(4, F_WINDOW_UPDATE, 0, sid)
        self._u32(increment)

    cdef void _rst(self, uint32_t sid, uint32_t code):
        self._frame(4, F_RST_STREAM, 0, sid)
        self._u32(code)

    @property
    def has_output(self):
        """True when :meth:`data_to_send` has bytes to return."""
        return self.out_len > 0

    cpdef bytes data_to_send(self):
        """The bytes to write to the socket now (and forget)."""
        cdef bytes data = PyBytes_FromStringAndSize(<char*>self.out, self.out_len)
        self.out_len = 0
        if self.out_cap > OUT_KEEP:  # after a large request: do not hold on to the memory
            free(self.out)
            self.out = NULL
            self.out_cap = 0
        self.flushed_max_id = self.max_started_id
        return data

    def initiate(self):
        """Queue the connection preface, our SETTINGS and the connection window
        increase."""
        cdef bytes preface = PREFACE
        self._write(PyBytes_AS_STRING(preface), len(preface))
        self._frame(12, F_SETTINGS, 0, 0)
        self._write(b"\x00\x02\x00\x00\x00\x00", 6)  # ENABLE_PUSH 0
        self._write(b"\x00\x04", 2)  # INITIAL_WINDOW_SIZE
        self._u32(OUR_STREAM_WINDOW)
        self._window_update(0, OUR_CONN_WINDOW - DEFAULT_WINDOW)

    def ping(self, bytes payload=b"\x00" * 8):
        """Queue a PING (``pings_acked`` counts the acks received)."""
        if len(payload) != 8:
            raise ValueError("a PING payload is 8 bytes")
        self._frame(8, F_PING, 0, 0)
        self._write(payload, 8)

    # -------------------------------------------------------------- state

    @property
    def active(self):
        """Calls open or waiting for a stream slot."""
        return self.nopen + len(self.queued)

    @property
    def usable(self):
        """True while new calls may be started on this connection."""
        return self._usable()

    cdef bint _usable(self):
        return not (self.closed or self.goaway_received or self.next_id > 0x7FFFFFFF)

    # -------------------------------------------------------------- the open streams

    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef H2Stream _find(self, uint32_t sid):
        """The open stream ``sid``, or None."""
        cdef list slots = self.slots
        cdef size_t mask = self.slot_mask
        cdef size_t i = (sid >> 1) & mask
        cdef object e
        while True:
            e = slots[i]
            if e is None:
                return None
            if (<H2Stream>e).id == sid:
                return <H2Stream>e
            i = (i + 1) & mask

    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef int _add(self, H2Stream s) except -1:
        """Enter the just opened stream ``s`` (its id set)."""
        if (self.nopen + 1) * 2 > <Py_ssize_t>(self.slot_mask + 1):
            self._resize((self.slot_mask + 1) * 2)
        cdef list slots = self.slots
        cdef size_t mask = self.slot_mask
        cdef size_t home = (s.id >> 1) & mask, i = home
        while slots[i] is not None:
            i = (i + 1) & mask
        slots[i] = s
        self.nopen += 1
        if i != home:
            self.displaced += 1
        return 0

    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef int _remove(self, H2Stream s) except -1:
        """Forget the stream ``s`` if it is in the table (closing twice is harmless)."""
        cdef list slots = self.slots
        cdef size_t mask = self.slot_mask
        cdef size_t i = (s.id >> 1) & mask, j, k
        cdef object e
        while True:
            e = slots[i]
            if e is None:
                return 0
            if e is s:
                break
            i = (i + 1) & mask
        self.nopen -= 1
        if i != (s.id >> 1) & mask:
            self.displaced -= 1
        # Close the gap: move up each later stream of the run whose probe passed slot i
        # (its home is not in the cyclic interval (i, j]), as linear probing requires.
        # With no stream out of its home slot, no probe passes any slot: nothing moves.
        j = i
        while self.displaced:
            j = (j + 1) & mask
            e = slots[j]
            if e is None:
                break
            k = ((<H2Stream>e).id >> 1) & mask
            if (k <= i or k > j) if i < j else (k <= i and k > j):
                slots[i] = e
                if i == k:
                    self.displaced -= 1
                i = j
        slots[i] = None
        return 0

    cdef int _resize(self, Py_ssize_t size) except -1:
        cdef list old = self.slots
        self.slots = [None] * size
        self.slot_mask = size - 1
        self.nopen = 0
        self.displaced = 0
        for e in old:
            if e is not None:
                self._add(<H2Stream>e)
        return 0

    cdef list _open_streams(self):
        """The open streams, in the order they were opened."""
        cdef list found = [e for e in self.slots if e is not None]
        found.sort(key=_stream_id)
        return found

    cdef void _clear_streams(self):
        self.slots = [None] * 256
        self.slot_mask = 255
        self.nopen = 0
        self.displaced = 0

    # -------------------------------------------------------------- starting calls

    cdef bytes _template(self, str path):
        if path is self.last_path:
            return self.last_template
        block = self.templates.get(path)
        if block is None:
            block = encode_request_headers(path, self.authority, self.secure)
            self.templates[path] = block
        self.last_path = path
        self.last_template = <bytes>block
        return <bytes>block

    cdef bytes _timeout_literal(self, object timeout):
        lit = self.timeouts.get(timeout)
        if lit is None:
            lit = _literal_new(b"grpc-timeout", grpc_timeout(timeout))
            if len(self.timeouts) > 256:
                self.timeouts.clear()
            self.timeouts[timeout] = lit
        return <bytes>lit

    cdef bytes _header_block(self, str path, object timeout, object metadata):
        cdef bytes block = self._template(path)
        if timeout is not None:
            block = block + self._timeout_literal(timeout)
        if metadata:
            block = block + _metadata_block(metadata)
        return block

    cdef int _check_open(self) except -1:
        """Raise (UNAVAILABLE, not sent) if the connection takes no new calls."""
        if self.closed:
            raise _unavailable("the connection is closed", False)
        if self.goaway_received:
            raise _unavailable("the server is going away (GOAWAY)", False)
        return 0

    cdef unsigned char* _begin_fast(self, H2Stream s, str path, Py_ssize_t n,
                                    object timeout, object metadata) except? NULL:
        """Open unary call ``s`` the fast way (see _open_unary_fast) if it can be, and
        return where its ``n``-byte request goes; NULL if it cannot be (the caller then
        makes the request's bytes and calls _begin). Raises as _begin does when the
        connection takes no new calls."""
        self._check_open()
        if metadata or self.queued or self.nopen >= self.peer_max_streams:
            return NULL
        return self._open_unary_fast(s, path, n, timeout)

    cdef unsigned char* _open_unary_fast(self, H2Stream s, str path, Py_ssize_t n,
                                         object timeout) except? NULL:
        """Open unary call ``s``, whose request is ``n`` bytes, if the request fits the
        windows and one frame: its HEADERS and the DATA frame's header and message prefix
        are written to the output, and the ``n`` bytes the request goes in are reserved
        after them (returned: the caller writes the request there before anything else
        uses the output). NULL if it does not fit."""
        cdef Py_ssize_t mlen = n + 5
        cdef bytes block, lit = None
        cdef Py_ssize_t hlen
        cdef uint32_t sid = self.next_id
        if (mlen > self.conn_send_window or mlen > self.peer_initial_window
                or mlen > self.peer_max_frame or sid > 0x7FFFFFFF):
            return NULL
        block = self._template(path)
        hlen = PyBytes_GET_SIZE(block)
        if timeout is not None:
            lit = self._timeout_literal(timeout)
            hlen += PyBytes_GET_SIZE(lit)
        if hlen > self.peer_max_frame:
            return NULL
        # HEADERS, then DATA with the length-prefixed message: one reservation of output
        # (made first: nothing has changed if it fails)
        cdef Py_ssize_t blen = PyBytes_GET_SIZE(block)
        cdef unsigned char* p = self._reserve(18 + hlen + mlen)
        s.unary = True
        s.id = sid
        s.state = ST_OPEN
        s.local_closed = True
        s.end_pending = True
        s.send_window = self.peer_initial_window - mlen
        s.recv_window = OUR_STREAM_WINDOW
        self.next_id += 2
        self.max_started_id = sid
        self.conn_send_window -= mlen
        self._add(s)
        _frame_header(p, hlen, F_HEADERS, FLAG_END_HEADERS, sid)
        p += 9
        memcpy(p, PyBytes_AS_STRING(block), blen)
        p += blen
        if lit is not None:
            memcpy(p, PyBytes_AS_STRING(lit), hlen - blen)
            p += hlen - blen
        _frame_header(p, mlen, F_DATA, FLAG_END_STREAM, sid)
        p += 9
        p[0] = 0
        p[1] = (n >> 24) & 0xFF
        p[2] = (n >> 16) & 0xFF
        p[3] = (n >> 8) & 0xFF
        p[4] = n & 0xFF
        return p + 5

    cpdef H2Stream start(self, object handle, str path, object message, object timeout,
                         object metadata=None, bint unary=True):
        """Open a call to ``path``. Unary: ``message`` is the request (sent with
        END_STREAM). Streaming (``unary=False``): ``message`` is None and requests
        follow with :meth:`send`. The response goes to ``handle``."""
        cdef H2Stream s = H2Stream.__new__(H2Stream)
        s.handle = handle
        self._begin(s, path, message, timeout, metadata, unary)
        return s

    cdef int _begin(self, H2Stream s, str path, object message, object timeout,
                    object metadata, bint unary) except -1:
        """Open (or queue, when the server's stream limit is reached) the call ``s``."""
        cdef unsigned char* p
        cdef Py_ssize_t n
        if unary and type(message) is bytes:  # the fast way when it can be (_begin_fast)
            n = PyBytes_GET_SIZE(<bytes>message)
            p = self._begin_fast(s, path, n, timeout, metadata)
            if p != NULL:
                memcpy(p, PyBytes_AS_STRING(<bytes>message), n)
                return 0
        else:
            self._check_open()
        s.unary = unary
        s.header_block = self._header_block(path, timeout, metadata)
        s.sendbuf = None
        s.rbuf = None
        s.message = None
        if message is not None:
            s.sendbuf = bytearray(b"\x00" + (<uint32_t>len(message)).to_bytes(4, "big"))
            s.sendbuf += message
        s.end_pending = unary
        if self.nopen >= self.peer_max_streams or self.queued:
            s.state = ST_QUEUED
            self.queued.append(s)
        else:
            self._open(s)
        return 0

    cdef void _open(self, H2Stream s):
        cdef bytes block = s.header_block
        cdef Py_ssize_t n = len(block), chunk, pos
        cdef uint32_t sid = self.next_id
        s.id = sid
        self.next_id += 2
        self.max_started_id = sid
        s.state = ST_OPEN
        s.send_window = self.peer_initial_window
        s.recv_window = OUR_STREAM_WINDOW
        s.recv_unacked = 0
        s.header_block = None
        self._add(s)
        cdef int end_flag = 0
        if s.end_pending and (s.sendbuf is None or len(s.sendbuf) == 0):
            end_flag = FLAG_END_STREAM
            s.local_closed = True
        if n <= self.peer_max_frame:
            self._frame(n, F_HEADERS, FLAG_END_HEADERS | end_flag, sid)
            self._write(PyBytes_AS_STRING(block), n)
        else:
            self._frame(self.peer_max_frame, F_HEADERS, end_flag, sid)
            self._write(PyBytes_AS_STRING(block), self.peer_max_frame)
            pos = self.peer_max_frame
            while pos < n:
                chunk = min(n - pos, self.peer_max_frame)
                flags = FLAG_END_HEADERS if pos + chunk == n else 0
                self._frame(chunk, F_CONTINUATION, flags, sid)
                self._write(PyBytes_AS_STRING(block) + pos, chunk)
                pos += chunk
        if s.sendbuf is not None and len(s.sendbuf):
            self._flush_stream(s)

    cdef void _flush_stream(self, H2Stream s):
        """Write as much of the stream's pending data as the windows allow."""
        cdef Py_ssize_t avail, chunk
        cdef bytearray buf = s.sendbuf
        cdef int flags
        if s.local_closed or s.state == ST_CLOSED or s.state == ST_QUEUED:
            return
        while buf is not None and len(buf):
            avail = min(self.conn_send_window, s.send_window)
            if avail <= 0:
                if not s.blocked:
                    s.blocked = True
                    self.blocked.append(s)
                return
            chunk = min(min(avail, <int64_t>len(buf)), self.peer_max_frame)
            flags = 0
            if chunk == len(buf) and s.end_pending:
                flags = FLAG_END_STREAM
                s.local_closed = True
            self._frame(chunk, F_DATA, flags, s.id)
            self._write(PyByteArray_AS_STRING(buf), chunk)
            del buf[:chunk]
            self.conn_send_window -= chunk
            s.send_window -= chunk
        if s.end_pending and not s.local_closed:
            self._frame(0, F_DATA, FLAG_END_STREAM, s.id)
            s.local_closed = True

    def send(self, H2Stream s, bytes message):
        """Queue one request message on a streaming call."""
        if s.end_pending or s.state == ST_CLOSED:
            return
        if s.sendbuf is None:
            s.sendbuf = bytearray()
        s.sendbuf += b"\x00" + (<uint32_t>len(message)).to_bytes(4, "big")
        s.sendbuf += message
        self._flush_stream(s)

    def end(self, H2Stream s):
        """Half-close a streaming call (END_STREAM once its pending data is written)."""
        if s.end_pending or s.state == ST_CLOSED:
            return
        s.end_pending = True
        self._flush_stream(s)

    def consumed(self, H2Stream s, Py_ssize_t n):
        """The caller took ``n`` bytes of a streaming call's messages: reopen its
        window."""
        if s.state == ST_CLOSED or s.state == ST_QUEUED:
            return
        if s.credit:  # given back already, while the message was arriving
            if n <= s.credit:
                s.credit -= n
                return
            n -= s.credit
            s.credit = 0
        self._give_back(s, n)

    cdef void _give_back(self, H2Stream s, Py_ssize_t n):
        s.recv_unacked += n
        if s.recv_unacked >= OUR_STREAM_WINDOW // 2:
            self._window_update(s.id, <uint32_t>s.recv_unacked)
            s.recv_window += s.recv_unacked
            s.recv_unacked = 0

    cpdef cancel(self, H2Stream s, int code=E_CANCEL):
        """Abandon a call (RST_STREAM CANCEL); its handle is not called again."""
        if s.state == ST_CLOSED:
            return
        if s.state == ST_QUEUED:
            try:
                self.queued.remove(s)
            except ValueError:
                pass
            s.state = ST_CLOSED
            return
        if not self.closed:
            self._rst(s.id, code)
        self._close_stream(s)

    cdef void _close_stream(self, H2Stream s):
        s.state = ST_CLOSED
        if self.last_stream is s:
            self.last_stream = None
        self._remove(s)
        s.sendbuf = None
        s.rbuf = None
        s.partial = None
        if s.blocked:
            s.blocked = False
            try:
                self.blocked.remove(s)
            except ValueError:
                pass
        while (self.queued and self.nopen < self.peer_max_streams
               and not self.closed):
            if self.goaway_received or self.next_id > 0x7FFFFFFF:
                break
            self._open(<H2Stream>self.queued.popleft())

    # -------------------------------------------------------------- delivering results

    cdef void _deliver(self, H2Stream s, object result):
        s._resolve(result, None)

    cdef void _fail(self, H2Stream s, object exc):
        s._resolve(None, exc)

    cdef void _stream_error(self, H2Stream s, object exc, int rst_code):
        """Fail one call and reset its stream."""
        if s.state == ST_CLOSED:
            return
        if not self.closed and rst_code >= 0:
            self._rst(s.id, rst_code)
        self._close_stream(s)
        self._fail(s, exc)

    def fail_all(self, str message, object sent_unknown=None):
        """The connection is gone: fail every call on it with ``UnavailableError``.

        ``sent`` is False for calls whose request provably never left (not yet handed to
        :meth:`data_to_send`), ``sent_unknown`` for the others."""
        self._fail_all_with(message, sent_unknown, False)

    def close(self):
        """Fail every call with ``CancelledError`` (the transport is being closed)."""
        self._fail_all_with("the client is closed", None, True)

    cdef void _fail_all_with(self, str message, object sent_unknown, bint cancelled):
        cdef H2Stream s
        self.closed = True
        pending = self._open_streams() + list(self.queued)
        self._clear_streams()
        self.last_stream = None
        self.queued.clear()
        self.blocked.clear()
        for s in pending:
            s.state = ST_CLOSED
            if cancelled:
                exc = CancelledError(message)
            elif s.id == 0 or s.id > self.flushed_max_id:
                exc = _unavailable(message, False)
            else:
                exc = _unavailable(message, sent_unknown)
            self._fail(s, exc)

    cdef void _connection_error(self, int code, str message):
        cdef H2Stream s
        name = _ERROR_NAMES.get(code, str(code))
        text = f"HTTP/2 connection error {name}: {message}"
        if not self.closed:
            debug = message.encode("utf-8", "replace")[:256]
            self._frame(8 + len(debug), F_GOAWAY, 0, 0)
            self._u32(0)
            self._u32(code)
            self._write(debug, len(debug))
        self.closed = True
        self.error = InternalError(text)
        pending = self._open_streams() + list(self.queued)
        self._clear_streams()
        self.last_stream = None
        self.queued.clear()
        self.blocked.clear()
        for s in pending:
            s.state = ST_CLOSED
            self._fail(s, InternalError(text))

    # -------------------------------------------------------------- receiving

    cpdef receive(self, data):
        """Process bytes read from the socket. Never raises: a protocol violation closes
        the connection (``closed`` becomes True, ``error`` says why, the calls fail)."""
        if self.closed:
            return
        if type(data) is not bytes:
            data = bytes(data)
        cdef Py_ssize_t consumed = 0, start = 0
        try:
            if self.inbuf:
                start = self._complete_frame(<bytes>data)
                if start < 0:
                    data = self.inbuf + <bytes>data
                    self.inbuf = b""
                    start = 0
            consumed = self._parse(
                <const unsigned char*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), start
            )
        except Exception as exc:
            self._parse_failed(exc)
            return
        if consumed < len(data):
            self.inbuf = (<bytes>data)[consumed:]

    cpdef object get_buffer(self, Py_ssize_t sizehint=-1):
        """A writable view for the next read to fill (asyncio's ``BufferedProtocol``):
        the free end of the connection's read buffer, so a read makes no new object (the
        view of the whole buffer when it is empty, else a view of its free end). Follow
        each read with :meth:`buffer_updated`. Do not mix with :meth:`receive` on one
        connection."""
        cdef Py_ssize_t left
        cdef char* buf
        if self.rbuf is None:
            self.rbuf = bytearray(READ_BUFFER)
            self.rview = memoryview(self.rbuf)
        if self.rstart == self.rend:
            self.rstart = self.rend = 0
        elif READ_BUFFER - self.rend < READ_MIN_FREE:
            # the incomplete frame left moves to the front (whole frames were parsed)
            left = self.rend - self.rstart
            buf = PyByteArray_AS_STRING(self.rbuf)
            memmove(buf, buf + self.rstart, left)
            self.rstart = 0
            self.rend = left
        if self.rend == 0:  # (the usual case: the last read ended with a whole frame)
            return self.rview
        return self.rview[self.rend:]

    cpdef buffer_updated(self, Py_ssize_t nbytes):
        """Process the ``nbytes`` a read put into :meth:`get_buffer`'s view. Never
        raises, like :meth:`receive`."""
        if nbytes < 0 or self.rbuf is None or nbytes > READ_BUFFER - self.rend:
            raise ValueError("buffer_updated() without a matching get_buffer()")
        self.rend += nbytes
        if self.closed:
            self.rstart = self.rend = 0
            return
        try:
            self.rstart = self._parse(
                <const unsigned char*>PyByteArray_AS_STRING(self.rbuf), self.rend,
                self.rstart
            )
        except Exception as exc:
            self._parse_failed(exc)
            self.rstart = self.rend = 0

    cdef void _parse_failed(self, object exc):
        """Close the connection for what parsing raised."""
        if isinstance(exc, _ConnectionError):
            self._connection_error(exc.h2_code, str(exc))
        elif isinstance(exc, MemoryError):
            self._connection_error(E_INTERNAL, "out of memory")
        else:  # a bug must not take the caller down with it
            self._connection_error(E_INTERNAL, f"{type(exc).__name__}: {exc}")

    cdef Py_ssize_t _complete_frame(self, bytes data) except -2:
        """Parse the frame the previous read ended inside (``inbuf``), completed from
        the start of ``data``, and return how many bytes of ``data`` it took: the rest
        is then parsed in place, not copied behind the leftover. -1 when ``data`` does
        not complete it (then the caller joins the two)."""
        cdef bytes head = self.inbuf
        cdef Py_ssize_t have = PyBytes_GET_SIZE(head), need
        cdef const unsigned char* h = <const unsigned char*>PyBytes_AS_STRING(head)
        if have < 9:
            return -1
        need = 9 + ((<Py_ssize_t>h[0] << 16) | (h[1] << 8) | h[2]) - have
        if need > PyBytes_GET_SIZE(data):
            return -1
        self.inbuf = b""
        cdef bytes frame = head + data[:need]
        self._parse(
            <const unsigned char*>PyBytes_AS_STRING(frame), PyBytes_GET_SIZE(frame), 0
        )
        return need

    cdef Py_ssize_t _parse(self, const unsigned char* p, Py_ssize_t n,
                           Py_ssize_t pos) except -1:
        """Process the whole frames of the ``n`` bytes at ``p`` from ``pos``; return
        where the first incomplete one starts."""
        cdef Py_ssize_t length
        cdef int ftype, flags
        cdef uint32_t sid
        while n - pos >= 9 and not self.closed:
            length = (p[pos] << 16) | (p[pos + 1] << 8) | p[pos + 2]
            if length > OUR_MAX_FRAME:
                raise _ConnectionError(E_FRAME_SIZE, f"frame of {length} bytes")
            if n - pos - 9 < length:
                break
            ftype = p[pos + 3]
            flags = p[pos + 4]
            sid = (((p[pos + 5] & 0x7F) << 24) | (p[pos + 6] << 16)
                   | (p[pos + 7] << 8) | p[pos + 8])
            pos += 9
            if self.expecting_cont and (
                ftype != F_CONTINUATION or sid != self.cont_stream
            ):
                raise _ConnectionError(E_PROTOCOL, "expected a CONTINUATION frame")
            if ftype == F_DATA:
                self._on_data(p + pos, length, flags, sid)
            elif ftype == F_HEADERS:
                self._on_headers(p + pos, length, flags, sid)
            elif ftype == F_CONTINUATION:
                self._on_continuation(p + pos, length, flags, sid)
            elif ftype == F_SETTINGS:
                self._on_settings(p + pos, length, flags, sid)
            elif ftype == F_WINDOW_UPDATE:
                self._on_window_update(p + pos, length, sid)
            elif ftype == F_PING:
                self._on_ping(p + pos, length, flags, sid)
            elif ftype == F_RST_STREAM:
                self._on_rst(p + pos, length, sid)
            elif ftype == F_GOAWAY:
                self._on_goaway(p + pos, length, sid)
            elif ftype == F_PRIORITY:
                if sid == 0:
                    raise _ConnectionError(E_PROTOCOL, "PRIORITY on stream 0")
                if length != 5:
                    raise _ConnectionError(E_FRAME_SIZE, "PRIORITY frame size")
            elif ftype == F_PUSH_PROMISE:
                raise _ConnectionError(E_PROTOCOL, "PUSH_PROMISE with push disabled")
            # unknown frame types are ignored (RFC 9113 section 4.1)
            pos += length
        return pos

    cdef H2Stream _stream_for(self, uint32_t sid, str what):
        """The open stream ``sid``, or None for a stream closed earlier (frames on it
        are ignored); a stream never opened is a protocol error."""
        cdef H2Stream last = self.last_stream
        if last is not None and last.id == sid:
            return last  # open: _close_stream forgets it
        if sid == 0:
            raise _ConnectionError(E_PROTOCOL, f"{what} on stream 0")
        s = self._find(sid)
        if s is not None:
            self.last_stream = s
            return s
        if (sid & 1) == 0 or sid > self.max_started_id:
            raise _ConnectionError(E_PROTOCOL, f"{what} on idle stream {sid}")
        return None

    cdef void _on_data(self, const unsigned char* p, Py_ssize_t length, int flags,
                       uint32_t sid) except *:
        cdef Py_ssize_t pad = 0, start = 0
        cdef H2Stream s = self._stream_for(sid, "DATA")
        if flags & FLAG_PADDED:
            if length < 1:
                raise _ConnectionError(E_FRAME_SIZE, "padded DATA without pad length")
            pad = p[0]
            start = 1
            if pad >= length:
                raise _ConnectionError(E_PROTOCOL, "DATA padding exceeds the frame")
        # connection-level flow control counts the whole frame payload
        self.conn_recv_window -= length
        if self.conn_recv_window < 0:
            raise _ConnectionError(
                E_FLOW_CONTROL, "the server overran the connection window"
            )
        self.conn_recv_unacked += length
        if self.conn_recv_unacked >= OUR_CONN_WINDOW // 2:
            self._window_update(0, <uint32_t>self.conn_recv_unacked)
            self.conn_recv_window += self.conn_recv_unacked
            self.conn_recv_unacked = 0
        if s is None:
            return
        if s.state != ST_HEADERS:
            self._stream_error(
                s, InternalError("DATA before response headers"), E_PROTOCOL
            )
            return
        s.recv_window -= length
        if s.recv_window < 0:
            self._stream_error(s, InternalError("the server overran the stream window"),
                               E_FLOW_CONTROL)
            return
        if s.unary:  # the whole response is buffered anyway: give the window back now
            s.recv_unacked += length
            if (s.recv_unacked >= OUR_STREAM_WINDOW // 2
                    and not (flags & FLAG_END_STREAM)):
                self._window_update(s.id, <uint32_t>s.recv_unacked)
                s.recv_window += s.recv_unacked
                s.recv_unacked = 0
        elif pad:
            self._give_back(s, pad + 1)
        self._on_grpc_bytes(s, p + start, length - start - pad)
        if s.state == ST_CLOSED:
            return
        if flags & FLAG_END_STREAM:
            self._stream_error(
                s, InternalError("the server ended the stream without trailers"), -1
            )
            self._rst_if_open(s)

    cdef void _rst_if_open(self, H2Stream s):
        if not s.local_closed and not self.closed:
            self._rst(s.id, E_NO_ERROR)
            s.local_closed = True

    cdef int _on_grpc_bytes(self, H2Stream s, const unsigned char* p,
                            Py_ssize_t n) except -1:
        """Split gRPC length-prefixed messages out of a DATA payload. A message that
        fits in the frame is copied out of it once; a message split across frames is
        copied once too, into a bytes object of its final size allocated when its
        prefix arrives. The window of a split message is given back as it arrives
        (else a message larger than the stream window could never complete);
        ``consumed`` then skips what was given back early."""
        cdef Py_ssize_t pos = 0, mlen, take
        cdef unsigned char flag
        cdef bint split
        cdef bytearray rbuf
        cdef const unsigned char* q
        cdef object message
        while pos < n:
            if s.partial is not None:  # the rest of a message begun in an earlier frame
                take = min(s.need - s.filled, n - pos)
                memcpy(PyBytes_AS_STRING(s.partial) + s.filled, p + pos, take)
                s.filled += take
                pos += take
                if not s.unary:
                    s.credit += take
                    self._give_back(s, take)
                if s.filled < s.need:
                    return 0
                message = s.partial
                s.partial = None
                self._on_message(s, message, s.need)
                if s.state == ST_CLOSED:
                    return 0
                continue
            rbuf = s.rbuf
            if rbuf is not None and PyByteArray_GET_SIZE(rbuf):  # a split prefix
                take = min(5 - PyByteArray_GET_SIZE(rbuf), n - pos)
                rbuf += PyBytes_FromStringAndSize(<char*>p + pos, take)
                pos += take
                if not s.unary:
                    s.credit += take
                    self._give_back(s, take)
                if PyByteArray_GET_SIZE(rbuf) < 5:
                    return 0
                q = <const unsigned char*>PyByteArray_AS_STRING(rbuf)
                flag = q[0]
                mlen = (<Py_ssize_t>q[1] << 24) | (q[2] << 16) | (q[3] << 8) | q[4]
                del rbuf[:]
                split = True
            elif n - pos >= 5:
                flag = p[pos]
                mlen = ((<Py_ssize_t>p[pos + 1] << 24) | (p[pos + 2] << 16)
                        | (p[pos + 3] << 8) | p[pos + 4])
                pos += 5
                split = False
            else:  # the prefix itself is split
                if rbuf is None:
                    s.rbuf = rbuf = bytearray()
                rbuf += PyBytes_FromStringAndSize(<char*>p + pos, n - pos)
                if not s.unary:
                    s.credit += n - pos
                    self._give_back(s, n - pos)
                return 0
            if not self._check_prefix(s, flag, mlen):
                return 0
            if n - pos >= mlen:  # the whole message (or its whole body) is here
                if s.unary and s.nmessages == 0 and s._parse_now(p + pos, mlen):
                    message = None  # the stream parsed it where it lies
                else:
                    message = PyBytes_FromStringAndSize(<char*>p + pos, mlen)
                pos += mlen
                self._on_message(s, message, mlen)
                if s.state == ST_CLOSED:
                    return 0
                continue
            if not split and not s.unary:  # its prefix came in this frame
                s.credit += 5
                self._give_back(s, 5)
            s.partial = PyBytes_FromStringAndSize(NULL, mlen)
            s.need = mlen
            s.filled = 0
        return 0

    cdef bint _check_prefix(self, H2Stream s, unsigned char flag,
                            Py_ssize_t mlen) except -1:
        if flag != 0:
            self._stream_error(s, InternalError(
                "the server sent a compressed message, but no compression was "
                "negotiated"
            ), E_CANCEL)
            return False
        if mlen > self.max_recv_bytes:
            text = (f"Received message larger than max "
                    f"({mlen} vs. {self.max_recv_bytes})")
            self._stream_error(s, ResourceExhaustedError(text, details=text), E_CANCEL)
            return False
        return True

    cdef void _on_message(self, H2Stream s, bytes message, Py_ssize_t mlen):
        s.nmessages += 1
        if s.unary:
            if s.nmessages == 1:
                s.message = message
            else:
                self._stream_error(s, InternalError(
                    "the server sent more than one response to a unary call"
                ), E_CANCEL)
            return
        try:
            s.handle.push(message)
        except Exception:
            pass

    cdef void _on_headers(self, const unsigned char* p, Py_ssize_t length, int flags,
                          uint32_t sid) except *:
        cdef Py_ssize_t pad = 0, start = 0
        if sid == 0:
            raise _ConnectionError(E_PROTOCOL, "HEADERS on stream 0")
        if flags & FLAG_PADDED:
            if length < 1:
                raise _ConnectionError(
                    E_FRAME_SIZE, "padded HEADERS without pad length"
                )
            pad = p[0]
            start = 1
        if flags & FLAG_PRIORITY:
            start += 5
        if start + pad > length:
            raise _ConnectionError(E_PROTOCOL, "HEADERS padding exceeds the frame")
        cdef _Head head
        if flags & FLAG_END_HEADERS:
            head = self._recent(p + start, length - start - pad)
            if head is not None:
                self.memo_hits += 1
                self._on_head(sid, head, flags & FLAG_END_STREAM)
                return
        block = PyBytes_FromStringAndSize(<char*>p + start, length - start - pad)
        if flags & FLAG_END_HEADERS:
            self._on_header_block(sid, block, flags & FLAG_END_STREAM)
        else:
            self.expecting_cont = True
            self.cont_stream = sid
            self.cont_block = block
            self.cont_end_stream = flags & FLAG_END_STREAM

    cdef void _on_continuation(self, const unsigned char* p, Py_ssize_t length,
                               int flags,
                               uint32_t sid) except *:
        if not self.expecting_cont:
            raise _ConnectionError(E_PROTOCOL, "unexpected CONTINUATION frame")
        if len(self.cont_block) + length > MAX_HEADER_LIST:
            raise _ConnectionError(E_PROTOCOL, "header block too large")
        self.cont_block = self.cont_block + PyBytes_FromStringAndSize(<char*>p, length)
        if flags & FLAG_END_HEADERS:
            self.expecting_cont = False
            block = self.cont_block
            self.cont_block = b""
            self._on_header_block(sid, block, self.cont_end_stream)

    cdef _Head _recent(self, const unsigned char* p, Py_ssize_t n):
        """The digest of a block equal to one of the two recent memoized ones (None if it
        is neither, or the dynamic table changed since)."""
        if self.recent_gen != self.decoder.generation or self.recent0 is None:
            return None
        if (PyBytes_GET_SIZE(self.recent0) == n
                and memcmp(PyBytes_AS_STRING(self.recent0), p, n) == 0):
            return self.recent_head0
        if (self.recent1 is not None and PyBytes_GET_SIZE(self.recent1) == n
                and memcmp(PyBytes_AS_STRING(self.recent1), p, n) == 0):
            return self.recent_head1
        return None

    cdef void _remember(self, bytes block, _Head head):
        if self.recent_gen != self.decoder.generation:
            self.recent0 = self.recent1 = None
            self.recent_head0 = self.recent_head1 = None
            self.recent_gen = self.decoder.generation
        self.recent1, self.recent_head1 = self.recent0, self.recent_head0
        self.recent0, self.recent_head0 = block, head

    cdef _Head _decode_block(self, bytes block):
        cdef _Head head
        if self.decoder.generation != self.memo_gen:
            self.memo.clear()
            self.memo_gen = self.decoder.generation
        head = self.memo.get(block)
        if head is not None:
            self.memo_hits += 1
            self._remember(block, head)
            return head
        self.full_decodes += 1
        head = _digest(self.decoder._decode(block))
        if _indexed_only(block):
            if len(self.memo) >= MEMO_LIMIT:
                self.memo.clear()
            self.memo[block] = head
            self._remember(block, head)
        return head

    cdef void _on_header_block(self, uint32_t sid, bytes block,
                               bint end_stream) except *:
        # Decode first, always: every block updates the connection's HPACK state.
        self._on_head(sid, self._decode_block(block), end_stream)

    cdef void _on_head(self, uint32_t sid, _Head head, bint end_stream) except *:
        """A stream's decoded header block."""
        cdef H2Stream s = self._stream_for(sid, "HEADERS")
        cdef int code
        if s is None:
            return
        if s.state == ST_OPEN:
            if not end_stream and head.http_status != 200:
                code = _HTTP_STATUS.get(head.http_status, 2)
                self._stream_error(s, _status_error(
                    code, f"Received http2 header with status: {head.http_status}"
                ), E_CANCEL)
                return
            if not end_stream:
                s.state = ST_HEADERS
                return
            # trailers-only response
        elif s.state == ST_HEADERS:
            if not end_stream:
                self._stream_error(s, InternalError(
                    "a second header block without END_STREAM"
                ), E_PROTOCOL)
                return
        else:
            return
        self._finish(s, head)

    cdef void _finish(self, H2Stream s, _Head head):
        cdef int code = head.grpc_status
        self._rst_if_open(s)
        if (s.partial is not None or (s.rbuf is not None and len(s.rbuf))) and code == 0:
            self._stream_error(
                s, InternalError("the stream ended inside a message"), -1
            )
            return
        if code < 0:
            if head.http_status != 200 and head.http_status != -1:
                code = _HTTP_STATUS.get(head.http_status, 2)
                self._stream_error(s, _status_error(
                    code, f"Received http2 header with status: {head.http_status}"
                ), -1)
            else:
                self._stream_error(s, _status_error(
                    2, "missing grpc-status in the trailers"
                ), -1)
            return
        if code != 0:
            self._stream_error(s, _status_error(code, head.grpc_message), -1)
            return
        if s.unary and s.nmessages != 1:
            self._stream_error(
                s, InternalError("the server sent no response message"), -1
            )
            return
        self._close_stream(s)
        self._deliver(s, s.message if s.unary else None)

    cdef void _on_settings(self, const unsigned char* p, Py_ssize_t length, int flags,
                           uint32_t sid) except *:
        cdef Py_ssize_t i
        cdef int ident
        cdef uint32_t value
        cdef int64_t delta
        cdef H2Stream s
        if sid != 0:
            raise _ConnectionError(E_PROTOCOL, "SETTINGS on a stream")
        if flags & FLAG_ACK:
            if length:
                raise _ConnectionError(E_FRAME_SIZE, "SETTINGS ack with a payload")
            return
        if length % 6:
            raise _ConnectionError(E_FRAME_SIZE, "SETTINGS size is not a multiple of 6")
        for i in range(0, length, 6):
            ident = (p[i] << 8) | p[i + 1]
            value = ((<uint32_t>p[i + 2] << 24) | (p[i + 3] << 16)
                     | (p[i + 4] << 8) | p[i + 5])
            if ident == S_ENABLE_PUSH:
                if value > 1:
                    raise _ConnectionError(E_PROTOCOL, "ENABLE_PUSH must be 0 or 1")
            elif ident == S_MAX_CONCURRENT_STREAMS:
                self.peer_max_streams = value
            elif ident == S_INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise _ConnectionError(
                        E_FLOW_CONTROL, "INITIAL_WINDOW_SIZE too large"
                    )
                delta = <int64_t>value - self.peer_initial_window
                self.peer_initial_window = value
                for s in self._open_streams():
                    s.send_window += delta
                    if s.send_window > MAX_WINDOW:
                        raise _ConnectionError(
                            E_FLOW_CONTROL, "a stream window overflowed"
                        )
            elif ident == S_MAX_FRAME_SIZE:
                if value < 16384 or value > 16777215:
                    raise _ConnectionError(E_PROTOCOL, "MAX_FRAME_SIZE out of range")
                self.peer_max_frame = value
        self.settings_received = True
        self._frame(0, F_SETTINGS, FLAG_ACK, 0)
        self._unblock()
        while self.queued and self.nopen < self.peer_max_streams:
            if self.goaway_received or self.next_id > 0x7FFFFFFF:
                break
            self._open(<H2Stream>self.queued.popleft())

    cdef void _unblock(self):
        cdef H2Stream s
        if not self.blocked or self.conn_send_window <= 0:
            return
        waiting = self.blocked
        self.blocked = []
        for s in waiting:
            s.blocked = False
        for s in waiting:
            self._flush_stream(s)

    cdef void _on_window_update(self, const unsigned char* p, Py_ssize_t length,
                                uint32_t sid) except *:
        cdef uint32_t inc
        cdef H2Stream s
        if length != 4:
            raise _ConnectionError(E_FRAME_SIZE, "WINDOW_UPDATE size")
        inc = ((p[0] & 0x7F) << 24) | (p[1] << 16) | (p[2] << 8) | p[3]
        if sid == 0:
            if inc == 0:
                raise _ConnectionError(E_PROTOCOL, "WINDOW_UPDATE of 0")
            self.conn_send_window += inc
            if self.conn_send_window > MAX_WINDOW:
                raise _ConnectionError(
                    E_FLOW_CONTROL, "the connection window overflowed"
                )
            self._unblock()
            return
        s = self._stream_for(sid, "WINDOW_UPDATE")
        if s is None:
            return
        if inc == 0:
            self._stream_error(s, InternalError("WINDOW_UPDATE of 0"), E_PROTOCOL)
            return
        s.send_window += inc
        if s.send_window > MAX_WINDOW:
            self._stream_error(
                s, InternalError("the stream window overflowed"), E_FLOW_CONTROL
            )
            return
        if s.blocked:
            s.blocked = False
            self.blocked.remove(s)
        self._flush_stream(s)

    cdef void _on_ping(self, const unsigned char* p, Py_ssize_t length, int flags,
                       uint32_t sid) except *:
        if sid != 0:
            raise _ConnectionError(E_PROTOCOL, "PING on a stream")
        if length != 8:
            raise _ConnectionError(E_FRAME_SIZE, "PING size")
        if flags & FLAG_ACK:
            self.pings_acked += 1
            return
        self.pings_received += 1
        # grpc-go servers (etcd's) send a PING to estimate the bandwidth-delay product
        # whenever DATA arrives after their last PING was answered: with calls in flight,
        # that is a PING for nearly every write of requests, which mostly arrives on its
        # own, wakes the client for nothing but the PING, and its ack wakes the server in
        # turn. With hold_ping_acks, an ack is held while calls are open (the driver
        # releases it within PING_ACK_HOLD), so the server sends at most one such PING
        # per hold instead of one per write. A PING that comes while one is held gets the
        # held one answered first (every PING is answered, in order).
        if self.hold_ping_acks and self.nopen > 0:
            self.release_ping()
            memcpy(self.held_ping, p, 8)
            self.ping_held = True
            return
        self._ping_ack(p)

    cdef void _ping_ack(self, const unsigned char* payload) except *:
        self._frame(8, F_PING, FLAG_ACK, 0)
        self._write(<const char*>payload, 8)
        self.ping_acks_sent += 1

    cpdef release_ping(self):
        """Queue the ack of the held PING, if one is held (see ``hold_ping_acks``) and the
        connection is not closed."""
        if self.ping_held:
            self.ping_held = False
            if not self.closed:
                self._ping_ack(self.held_ping)

    cdef void _on_rst(self, const unsigned char* p, Py_ssize_t length,
                      uint32_t sid) except *:
        cdef uint32_t code
        cdef H2Stream s = self._stream_for(sid, "RST_STREAM")
        if length != 4:
            raise _ConnectionError(E_FRAME_SIZE, "RST_STREAM size")
        if s is None:
            return
        code = (<uint32_t>p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]
        name = _ERROR_NAMES.get(code, str(code))
        message = f"Received RST_STREAM with error code {code} ({name})"
        s.local_closed = True  # no RST back
        if code == E_REFUSED_STREAM:
            exc = _unavailable(message, False)
        else:
            exc = _status_error(_RST_STATUS.get(code, 13), message)
        self._stream_error(s, exc, -1)

    cdef void _on_goaway(self, const unsigned char* p, Py_ssize_t length,
                         uint32_t sid) except *:
        cdef uint32_t last, code
        cdef H2Stream s
        if sid != 0:
            raise _ConnectionError(E_PROTOCOL, "GOAWAY on a stream")
        if length < 8:
            raise _ConnectionError(E_FRAME_SIZE, "GOAWAY size")
        last = ((p[0] & 0x7F) << 24) | (p[1] << 16) | (p[2] << 8) | p[3]
        code = (<uint32_t>p[4] << 24) | (p[5] << 16) | (p[6] << 8) | p[7]
        debug = PyBytes_FromStringAndSize(<char*>p + 8, min(length - 8, 256)).decode(
            "utf-8", "replace"
        )
        self.goaway_received = True
        if not self.goaway_last_id or last < self.goaway_last_id:
            self.goaway_last_id = last
        name = _ERROR_NAMES.get(code, str(code))
        message = f"the server is closing the connection (GOAWAY {name}"
        message += f": {debug})" if debug else ")"
        refused = [s for s in self._open_streams() if s.id > last] + list(self.queued)
        self.queued.clear()
        for s in refused:
            if s.state == ST_QUEUED:
                s.state = ST_CLOSED
                self._fail(s, _unavailable(message, False))
            else:
                s.local_closed = True
                self._stream_error(s, _unavailable(message, False), -1)


# ----------------------------------------------------------------------- asyncio calls

include "_h2_asyncio.pxi"
