#!/usr/bin/python3
"""Mercurial's own wire-protocol-v2 codec as a JSON-lines service, for differential tests.

test/node/differential.test.ts spawns this once per run (with Debian's /usr/bin/python3, which can
import the `mercurial` package) and sends it many requests; everything here is deterministic, all
randomness lives on the TypeScript side so that a failure is reproducible from its printed seed.

Protocol: one JSON object per line on stdin, `{"id": <any>, "op": <name>, ...}`; one JSON object
per line on stdout, `{"id": <same>, "result": {...}}`, or `{"id": <same>, "crash": "<traceback>"}`
when the request itself was malformed (a harness bug, never a codec verdict). Codec verdicts such
as "cborutil refuses these bytes" are part of `result` (`{"error": ..., "errorType": ...}`).

CBOR values travel in a tagged JSON form shared with the TS side:
  null / true / false         None / True / False
  {"b": "<hex>"}              bytes
  {"i": "<decimal>"}          int (any size: the encoder decides what it accepts)
  {"l": [...]}                list           {"tuple": [...]}  tuple (encoder input only)
  {"m": [[k, v], ...]}        dict, in insertion order (what the decoder built)
  {"s": [...]}                set, elements sorted by cborutil's own sort key
  {"chunk": "<hex>", "first": bool, "last": bool}   cborutil.bytestringchunk
  {"str": "..."} / {"float": x}   str / float (encoder input only, to check refusals)

Only the standard library and the `mercurial` package are used.
"""

import io
import json
import resource
import sys
import traceback

from mercurial import ui as uimod
from mercurial import error, wireprotoframing, wireprototypes
from mercurial.utils import cborutil

try:
    from mercurial import zstd
except ImportError:  # the codec then lacks zstd-8mb, as a Mercurial without zstd would
    zstd = None

# cborutil's decoder turns a non-bytes indefinite-bytestring "chunk" n into bytes(n): a hostile
# 0x5f 0x1b <8 bytes> would try to allocate exabytes. Cap the address space so that becomes a
# quick MemoryError (reported as a decode error) instead of swapping the machine.
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, resource.RLIM_INFINITY))

UI = uimod.ui()
wireprotoframing.populatestreamencoders()


# --- tagged values --------------------------------------------------------------------------


def to_tagged(v):
    # bytestringchunk is a bytes subclass: test it first.
    if isinstance(v, cborutil.bytestringchunk):
        return {"chunk": bytes(v).hex(), "first": v.isfirst, "last": v.islast}
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, bytes):
        return {"b": v.hex()}
    if isinstance(v, int):
        return {"i": str(v)}
    if isinstance(v, (list, tuple)):
        return {"l": [to_tagged(x) for x in v]}
    if isinstance(v, dict):
        return {"m": [[to_tagged(k), to_tagged(x)] for k, x in v.items()]}
    if isinstance(v, (set, frozenset)):
        return {"s": [to_tagged(x) for x in sorted(v, key=cborutil._mixedtypesortkey)]}
    raise TypeError("cannot tag a %s" % type(v).__name__)


def from_tagged(t):
    if t is None or isinstance(t, bool):
        return t
    if "b" in t:
        return bytes.fromhex(t["b"])
    if "i" in t:
        return int(t["i"])
    if "l" in t:
        return [from_tagged(x) for x in t["l"]]
    if "tuple" in t:
        return tuple(from_tagged(x) for x in t["tuple"])
    if "m" in t:
        return {from_tagged(k): from_tagged(v) for k, v in t["m"]}
    if "s" in t:
        return {from_tagged(x) for x in t["s"]}
    if "str" in t:
        return t["str"]
    if "float" in t:
        return float(t["float"])
    raise ValueError("unknown tagged value %r" % (t,))


def describe(e):
    """An exception as text; Mercurial's messages are often bytes."""
    msg = getattr(e, "message", None)
    if msg is None:
        msg = e.args[0] if e.args else ""
    if isinstance(msg, bytes):
        msg = msg.decode("utf-8", "replace")
    return "%s: %s" % (type(e).__name__, msg)


def refusal(e):
    return {"error": describe(e), "errorType": type(e).__name__}


# --- CBOR -------------------------------------------------------------------------------------


def op_cbor_encode(req):
    try:
        value = from_tagged(req["value"])
        return {"hex": b"".join(cborutil.streamencode(value)).hex()}
    except Exception as e:  # cborutil raises ValueError; sorting mixed keys may raise TypeError
        return refusal(e)


def op_cbor_decode(req):
    data = bytes.fromhex(req["hex"])
    try:
        return {"values": [to_tagged(v) for v in cborutil.decodeall(data)]}
    except Exception as e:  # CBORDecodeError, but also TypeError/ValueError/MemoryError: report all
        return refusal(e)


def op_cbor_decode_stream(req):
    """Feeds `hex` to one bufferingdecoder in pieces of the given sizes (the rest in one piece),
    taking values after every piece, and reports (readcount, wanted, value count) per piece."""
    data = bytes.fromhex(req["hex"])
    decoder = cborutil.bufferingdecoder()
    steps, values, at = [], [], 0
    sizes = list(req["splits"]) + [len(data)]
    try:
        for size in sizes:
            if at >= len(data):
                break
            piece = data[at : at + size]
            at += len(piece)
            _, readcount, wanted = decoder.decode(piece)
            got = decoder.getavailable()
            values.extend(got)
            steps.append([readcount, wanted, len(got)])
    except Exception as e:
        return dict(refusal(e), steps=steps, values=[to_tagged(v) for v in values])
    return {"steps": steps, "values": [to_tagged(v) for v in values], "wanted": decoder._wanted}


# --- frames -----------------------------------------------------------------------------------


def frame_to_json(f):
    return {
        "requestId": f.requestid,
        "streamId": f.streamid,
        "streamFlags": f.streamflags,
        "typeId": f.typeid,
        "flags": f.flags,
        "payload": bytes(f.payload).hex(),
    }


def op_frames_encode(req):
    try:
        out = b"".join(
            bytes(
                wireprotoframing.makeframe(
                    f["requestId"],
                    f["streamId"],
                    f["streamFlags"],
                    f["typeId"],
                    f["flags"],
                    bytes.fromhex(f["payload"]),
                )
            )
            for f in req["frames"]
        )
        return {"hex": out.hex()}
    except Exception as e:
        return refusal(e)


def op_frames_decode(req):
    """readframe until clean EOF; frames read before an error are reported with it."""
    fh = io.BytesIO(bytes.fromhex(req["hex"]))
    frames = []
    try:
        while True:
            f = wireprotoframing.readframe(fh)
            if f is None:
                return {"frames": frames}
            frames.append(frame_to_json(f))
    except Exception as e:
        return dict(refusal(e), frames=frames)


# --- stream encodings -------------------------------------------------------------------------


def op_stream_encode(req):
    """One encoder for the whole request; each op is {"data": hex} (-> encode) or {"flush": true}
    (-> flush), and its output is reported in order."""
    encoder = wireprotoframing.STREAM_ENCODERS[req["encoding"].encode()][0](UI)
    outputs = []
    for step in req["ops"]:
        if "data" in step:
            outputs.append(encoder.encode(bytes.fromhex(step["data"])).hex())
        else:
            outputs.append(encoder.flush().hex())
    return {"outputs": outputs}


def op_stream_decode(req):
    decoder = wireprotoframing.STREAM_ENCODERS[req["encoding"].encode()][1](UI, [])
    outputs = []
    try:
        for payload in req["payloads"]:
            outputs.append(decoder.decode(bytes.fromhex(payload)).hex())
    except Exception as e:
        return dict(refusal(e), outputs=outputs)
    return {"outputs": outputs}


# --- whole responses --------------------------------------------------------------------------


def response_objects(spec):
    """A command's output generator, as wireprotov2server's dispatch would hand it over."""
    for item in spec:
        if "value" in item:
            yield from_tagged(item["value"])
        elif "encoded" in item:  # what a cacher replays: pre-encoded CBOR
            data = b"".join(
                b"".join(cborutil.streamencode(from_tagged(v))) for v in item["encoded"]
            )
            yield wireprototypes.encodedresponse(data)
        elif "indefinite" in item:  # rawstorefiledata's file contents
            yield wireprototypes.indefinitebytestringresponse(
                [bytes.fromhex(c) for c in item["indefinite"]]
            )
        elif "redirect" in item:
            r = item["redirect"]
            yield wireprototypes.alternatelocationresponse(
                url=r["url"].encode(),
                mediatype=r["mediatype"].encode(),
                size=r.get("size"),
            )
        elif "commandError" in item:
            e = item["commandError"]
            raise error.WireprotoCommandError(
                e["message"].encode(), [a.encode() for a in e.get("args", [])] or None
            )
        elif "serverError" in item:
            raise RuntimeError(item["serverError"])
        else:
            raise ValueError("unknown response item %r" % (item,))


def op_response_encode(req):
    """The body Mercurial's HTTP server sends for a (multi)request: a clientreactor builds the
    request frames (with `encodings` as its contentencodings, or no settings frame when null),
    a serverreactor with deferoutput (as wireprotov2server uses) reads them, and every command's
    objects go out on one output stream, as _processhttpv2request does."""
    encodings = req["encodings"]
    client = wireprotoframing.clientreactor(
        UI,
        buffersends=True,
        clientcontentencoders=None if encodings is None else [e.encode() for e in encodings],
    )
    for _ in req["requests"]:
        client.callcommand(b"cmd", {})
    _, meta = client.flushcommands()
    fh = io.BytesIO(b"".join(bytes(f) for f in meta[b"framegen"]))

    server = wireprotoframing.serverreactor(UI, deferoutput=True)
    runs = []
    while True:
        f = wireprotoframing.readframe(fh)
        if f is None:
            break
        action, meta = server.onframerecv(f)
        if action == b"runcommand":
            runs.append(meta[b"requestid"])
        elif action != b"wantframe":
            raise RuntimeError("server reactor said %r %r" % (action, meta))

    stream = server.makeoutputstream()
    for rid, spec in zip(runs, req["requests"]):
        server.oncommandresponsereadyobjects(stream, rid, response_objects(spec))
    action, meta = server.oninputeof()
    body = b"".join(bytes(f) for f in meta[b"framegen"]) if action == b"sendframes" else b""
    return {"hex": body.hex(), "requestIds": runs}


def check_response_object(r, v):
    """What wireprotov2peer.commandresponse (5.x) refuses: a first object that is not a status
    map, and any object after a redirect."""
    if "status" not in r:
        if not isinstance(v, dict) or v.get(b"status") not in (b"ok", b"error", b"redirect"):
            raise error.Abort(b"first object of a response is not a status map")
        r["status"] = v[b"status"]
    elif r["status"] == b"redirect":
        raise error.Abort(b"received unexpected response data after content redirect")


def op_client_decode(req):
    """Reads a response body as Mercurial's client does: readframe + clientreactor.onframerecv,
    and per request one bufferingdecoder over the response data (wireprotov2peer's
    commandresponse). Reports every decoded value (status map included), eos, and errors."""
    client = wireprotoframing.clientreactor(UI, buffersends=True)
    results = {}
    for rid in req["requestIds"]:
        # What callcommand + flushcommands would leave behind for this id; setting it directly
        # lets the test choose any request id.
        client._activerequests[rid] = wireprotoframing.commandrequest(rid, b"cmd", {})
        results[rid] = {"values": [], "eos": False, "errors": [], "_decoder": cborutil.bufferingdecoder()}

    fh = io.BytesIO(bytes.fromhex(req["hex"]))
    failure = None
    try:
        while True:
            frame = wireprotoframing.readframe(fh)
            if frame is None:
                break
            action, meta = client.onframerecv(frame)
            if action == b"error":
                if b"request" not in meta:
                    failure = "error action: %s" % meta[b"message"].decode("utf-8", "replace")
                    break
                results[frame.requestid]["errors"].append(
                    {"type": meta[b"type"].decode(), "message": to_tagged(meta[b"message"])}
                )
            elif action == b"responsedata":
                r = results[frame.requestid]
                r["_decoder"].decode(meta[b"data"])
                for v in r["_decoder"].getavailable():
                    check_response_object(r, v)
                    r["values"].append(to_tagged(v))
                if meta[b"eos"]:
                    r["eos"] = True
            elif action != b"noop":
                failure = "unexpected action %r" % action
                break
    except Exception as e:  # Abort from readframe, ProgrammingError, CBORDecodeError...
        failure = describe(e)

    out = {}
    for rid, r in results.items():
        # The bufferingdecoder must end on a value boundary, like our `clean` flag.
        clean = not r["_decoder"]._chunks and not r["_decoder"]._decoder.inprogress
        out[str(rid)] = {k: r[k] for k in ("values", "eos", "errors")}
        out[str(rid)]["clean"] = clean
    return {"requests": out, "failure": failure}


# --- main loop --------------------------------------------------------------------------------


def op_hello(req):
    from mercurial import __version__

    return {
        "mercurial": __version__.version.decode(),
        "zstd": getattr(zstd, "__version__", None) if zstd else None,
        "encoders": [n.decode() for n in wireprotoframing.STREAM_ENCODERS_ORDER],
    }


OPS = {
    "hello": op_hello,
    "cbor-encode": op_cbor_encode,
    "cbor-decode": op_cbor_decode,
    "cbor-decode-stream": op_cbor_decode_stream,
    "frames-encode": op_frames_encode,
    "frames-decode": op_frames_decode,
    "stream-encode": op_stream_encode,
    "stream-decode": op_stream_decode,
    "response-encode": op_response_encode,
    "client-decode": op_client_decode,
}


def main():
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        rid = None
        try:
            req = json.loads(line)
            rid = req.get("id")
            reply = {"id": rid, "result": OPS[req["op"]](req)}
        except Exception:
            reply = {"id": rid, "crash": traceback.format_exc()}
        out.write(json.dumps(reply, separators=(",", ":")) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
