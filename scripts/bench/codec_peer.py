#!/usr/bin/python3
"""Mercurial's own wire-protocol-v2 codec on a framed response body: the peer of
scripts/bench/codec.ts (run with Debian's /usr/bin/python3 and its `mercurial` package, or with
the interpreter and PYTHONPATH of .tools/bin/hg-5.6.1 via codec.ts --peer-wrapper).

For each body file it times, on the bytes already in memory (file I/O is not timed):

  scan    wireprotoframing.readframe over the whole body, counting frames;
  stream  (bodies with a content encoding other than identity) the stream decoder alone, fed
          every encoded payload in order, for information;
  decode  what Mercurial's client does with every frame (clientreactor.onframerecv and
          wireprotov2peer.commandresponse): readframe, the stream's inputstream decoder for
          `encoded` payloads (stream-settings frames install it), then one
          cborutil.bufferingdecoder per request id, taking every value out with getavailable().

and, untimed, a verification pass that re-encodes every decoded value with
cborutil.streamencode and hashes the result, so the caller can check that both implementations
decoded the very same values.

Usage: codec_peer.py [--iterations N] [--warmup N] [--repeat N] [--verify] NAME=PATH [NAME=PATH ...]
Prints one JSON document on stdout.
"""

import argparse
import hashlib
import io
import json
import platform
import statistics
import sys
import time

from mercurial import util, wireprotoframing
from mercurial.utils import cborutil

STREAM_FLAG_BEGIN_STREAM = wireprotoframing.STREAM_FLAG_BEGIN_STREAM
STREAM_FLAG_END_STREAM = wireprotoframing.STREAM_FLAG_END_STREAM
STREAM_FLAG_ENCODING_APPLIED = wireprotoframing.STREAM_FLAG_ENCODING_APPLIED
FRAME_TYPE_STREAM_SETTINGS = wireprotoframing.FRAME_TYPE_STREAM_SETTINGS
FRAME_TYPE_COMMAND_RESPONSE = wireprotoframing.FRAME_TYPE_COMMAND_RESPONSE
FRAME_TYPE_ERROR_RESPONSE = wireprotoframing.FRAME_TYPE_ERROR_RESPONSE
FLAG_SETTINGS_EOS = wireprotoframing.FLAG_STREAM_ENCODING_SETTINGS_EOS


class Fail(Exception):
    pass


def scan(body):
    """readframe over the whole body; returns the frame count."""
    fh = io.BytesIO(body)
    readframe = wireprotoframing.readframe
    frames = 0
    while True:
        frame = readframe(fh)
        if frame is None:
            return {"frames": frames}
        frames += 1


def decode(body, onvalue=None):
    """Decodes every frame and every CBOR value as Mercurial's client does; returns counts."""
    fh = io.BytesIO(body)
    readframe = wireprotoframing.readframe
    streams = {}
    settings = {}
    decoders = {}
    frames = values = bytestrings = bytestringbytes = decodedbytes = 0
    while True:
        frame = readframe(fh)
        if frame is None:
            break
        frames += 1
        # clientreactor.onframerecv
        if frame.streamid % 2:
            raise Fail('received frame with odd numbered stream ID: %d' % frame.streamid)
        stream = streams.get(frame.streamid)
        if stream is None:
            if not frame.streamflags & STREAM_FLAG_BEGIN_STREAM:
                raise Fail('received frame on unknown stream without beginning of stream flag set')
            stream = streams[frame.streamid] = wireprotoframing.inputstream(frame.streamid)
        payload = frame.payload
        if frame.streamflags & STREAM_FLAG_ENCODING_APPLIED:
            payload = stream.decode(payload)
        if frame.streamflags & STREAM_FLAG_END_STREAM:
            del streams[frame.streamid]
        if frame.typeid == FRAME_TYPE_STREAM_SETTINGS:
            # clientreactor._onstreamsettingsframe
            sdecoder = settings.get(frame.streamid)
            if sdecoder is None:
                sdecoder = settings[frame.streamid] = cborutil.bufferingdecoder()
            sdecoder.decode(payload)
            if frame.flags & FLAG_SETTINGS_EOS:
                decoded = sdecoder.getavailable()
                del settings[frame.streamid]
                stream.setdecoder(None, decoded[0], decoded[1:])
            continue
        if frame.typeid == FRAME_TYPE_ERROR_RESPONSE:
            raise Fail('error-response frame for request %d' % frame.requestid)
        if frame.typeid != FRAME_TYPE_COMMAND_RESPONSE:
            raise Fail('unhandled frame type: %d' % frame.typeid)
        # wireprotov2peer.commandresponse: one bufferingdecoder per request, values taken out
        # whenever some are available.
        decoder = decoders.get(frame.requestid)
        if decoder is None:
            decoder = decoders[frame.requestid] = cborutil.bufferingdecoder()
        decodedbytes += len(payload)
        available, readcount, wanted = decoder.decode(payload)
        if available:
            for value in decoder.getavailable():
                values += 1
                if isinstance(value, bytes):
                    bytestrings += 1
                    bytestringbytes += len(value)
                if onvalue is not None:
                    onvalue(value)
    return {
        "frames": frames,
        "values": values,
        "bytestrings": bytestrings,
        "bytestringBytes": bytestringbytes,
        "decodedBytes": decodedbytes,
    }


def encodedpayloads(body):
    """The encoded payloads of a body and its stream decoder's name, or None for identity."""
    fh = io.BytesIO(body)
    name = b'identity'
    payloads = []
    while True:
        frame = wireprotoframing.readframe(fh)
        if frame is None:
            break
        if frame.typeid == FRAME_TYPE_STREAM_SETTINGS:
            name = cborutil.decodeall(frame.payload)[0]
        elif frame.streamflags & STREAM_FLAG_ENCODING_APPLIED:
            payloads.append(frame.payload)
    if name == b'identity':
        return None
    return name, payloads


def streamdecode(name, payloads):
    """Stream decoding alone: the inputstream's decoder fed every encoded payload in order."""
    stream = wireprotoframing.inputstream(2)
    stream.setdecoder(None, name, [])
    decodedbytes = 0
    for payload in payloads:
        decodedbytes += len(stream.decode(payload))
    return {"payloads": len(payloads), "decodedBytes": decodedbytes}


def verify(body):
    """Untimed: decode again and hash the streamencode() re-encoding of every value."""
    digest = hashlib.sha256()
    size = [0]

    def onvalue(value):
        for chunk in cborutil.streamencode(value):
            digest.update(chunk)
            size[0] += len(chunk)

    counts = decode(body, onvalue)
    return {"counts": counts, "reencodedBytes": size[0], "sha256": digest.hexdigest()}


def timed(fn, body, iterations, warmup, repeat):
    """`warmup` untimed runs, then `iterations` timed runs of `repeat` calls each."""
    for _ in range(warmup * repeat):
        fn(body)
    times = []
    counts = None
    for _ in range(iterations):
        start = time.perf_counter()
        for _ in range(repeat):
            result = fn(body)
        times.append(time.perf_counter() - start)
        if counts is not None and result != counts:
            raise Fail('iterations disagree: %r vs %r' % (counts, result))
        counts = result
    median = statistics.median(times)
    return {
        "seconds": times,
        "medianSeconds": median,
        "mbPerSecond": len(body) * repeat / median / 1e6,
        "counts": counts,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--iterations', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeat', type=int, default=1, help='calls per timed run (small bodies)')
    parser.add_argument('--verify', action='store_true')
    parser.add_argument('bodies', nargs='+', metavar='NAME=PATH')
    args = parser.parse_args()

    wireprotoframing.populatestreamencoders()
    out = {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "mercurial": util.version().decode('ascii', 'replace'),
        "mercurialModule": wireprotoframing.__file__,
        "bodies": {},
    }
    for spec in args.bodies:
        name, _, path = spec.partition('=')
        with open(path, 'rb') as f:
            body = f.read()
        entry = {"bytes": len(body)}
        entry["scan"] = timed(scan, body, args.iterations, args.warmup, args.repeat)
        entry["decode"] = timed(decode, body, args.iterations, args.warmup, args.repeat)
        encoded = encodedpayloads(body)
        if encoded is not None:
            name_, payloads = encoded
            entry["stream"] = timed(
                lambda _: streamdecode(name_, payloads),
                body,
                args.iterations,
                args.warmup,
                args.repeat,
            )
            entry["stream"]["encoding"] = name_.decode('ascii')
            del payloads, encoded
        if args.verify:
            entry["verify"] = verify(body)
        out["bodies"][name] = entry
        del body
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write('\n')


if __name__ == '__main__':
    try:
        main()
    except Fail as e:
        sys.stderr.write('codec_peer: %s\n' % e)
        sys.exit(1)
