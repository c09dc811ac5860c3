"""hgweb's own reading of request targets, for the differential test of hgedge's canonical form
(test/node/target-hgweb.test.ts; src/protocol/target.ts).

Stands for Mercurial 5.6.1 (Debian bullseye), the last release with wire protocol v2: run it
with .tools/bin/hg-5.6.1's Python and PYTHONPATH. For each line on stdin, a JSON object
{"target": "<path>[?<query>]", "repos": [...]}, it prints one JSON line: what Mercurial would run,
{"protocol": "v2"|"v1"|"other", "repo", "command", "permission"}.

`repos` is the deployment: [""] is one repository served at the root by hgweb (`hg serve -R`);
otherwise the repositories an hgwebdir serves ("team/project"). The request is read by
Mercurial's own code — `hg serve`'s request-target split and unquoting (hgweb/server.py
_splitURI), request.parserequestfromenv (path split, query parse_qsl, the last `cmd`), and
pathutil.finddirs for hgwebdir's repository lookup — then routed by the conditions of
hgwebdir_mod._runwsgi, hgweb_mod.run_wsgi and wireprotoserver (copied here, as they are
interleaved with I/O there), with the command tables of wireprotov1server and wireprotov2server.
The experimental API server and HTTP v2 are taken as enabled.
"""

import io
import json
import sys

from mercurial import pathutil, pycompat, wireprotov1server, wireprotov2server
from mercurial.hgweb import request as requestmod
from mercurial.hgweb import server as servermod

V2_API = wireprotov2server.HTTP_WIREPROTO_V2


def environ(target):
    """The WSGI environment `hg serve` builds (server._httprequesthandler.do_hgweb, no prefix)."""
    path, query = servermod._splitURI(target)
    return {
        'REQUEST_METHOD': 'POST',
        'SERVER_NAME': 'origin',
        'SERVER_PORT': '80',
        'SCRIPT_NAME': '',
        'PATH_INFO': path,
        'QUERY_STRING': query or '',
        'wsgi.url_scheme': 'http',
        'wsgi.input': io.BytesIO(),
    }


def text(value):
    return value.decode('utf-8', 'surrogateescape')


def app_view(req, repo):
    """hgweb_mod.run_wsgi for one repository: the API (v2), else a v1 wire command, else a page."""
    other = {'protocol': 'other'}
    if req.dispatchparts and req.dispatchparts[0] == b'api':
        # wireprotoserver.handlewsgiapirequest, then wireprotov2server.handlehttpv2request
        if len(req.dispatchparts) < 2 or req.dispatchparts[1] != V2_API:
            return other
        urlparts = req.dispatchparts[2:]
        if len(urlparts) < 2:
            return other
        permission, command = urlparts[0:2]
        if permission not in (b'ro', b'rw'):
            return other
        if command not in wireprotov2server.COMMANDS and command != b'multirequest':
            return other
        return {
            'protocol': 'v2',
            'repo': repo,
            'command': text(command),
            'permission': 'pull' if permission == b'ro' else 'push',
        }
    # wireprotoserver.handlewsgirequest
    if b'cmd' not in req.qsparams:
        return other
    cmd = req.qsparams[b'cmd']
    if cmd not in wireprotov1server.commands or req.dispatchpath:
        return other
    return {
        'protocol': 'v1',
        'repo': repo,
        'command': text(cmd),
        'permission': text(wireprotov1server.commands[cmd].permission),
    }


def view(target, repos):
    env = environ(target)
    req = requestmod.parserequestfromenv(env)
    if repos == ['']:
        return app_view(req, '/')
    # hgwebdir_mod._runwsgi
    virtual = req.dispatchpath.strip(b'/')
    known = {pycompat.bytestr(r.encode('utf-8')) for r in repos}
    if virtual.startswith(b'static/') or b'static' in req.qsparams:
        return {'protocol': 'other'}
    if (not virtual or virtual == b'index') and virtual not in known:
        return {'protocol': 'other'}
    candidates = [virtual] + list(pathutil.finddirs(virtual))
    for virtualrepo in candidates:
        if virtualrepo in known:
            reparsed = requestmod.parserequestfromenv(env, reponame=virtualrepo)
            return app_view(reparsed, '/' + text(virtualrepo))
    return {'protocol': 'other'}


def main():
    for line in sys.stdin:
        case = json.loads(line)
        try:
            answer = view(case['target'], case['repos'])
        except Exception as error:  # Mercurial refuses the request itself (e.g. a bad prefix)
            answer = {'protocol': 'error', 'error': repr(error)}
        sys.stdout.write(json.dumps(answer) + '\n')
        sys.stdout.flush()


if __name__ == '__main__':
    main()
