/*
 * Tribune edge (njs 0.7+): checks listeners' signed URLs, collapses LL-HLS requests, and
 * guards the stream (/listen/) and its publisher.
 *
 * Loaded by the nginx.conf that `tribune edge-config` writes, which sets the variables
 * read here ($tribune_listener_key, $tribune_cache_root, ...). docs/edges.md says why.
 *
 * 1. The token in /hls/{space}/{token}/{file} is checked as the origin checks it
 *    (tribune/admission/tokens.py): tbl_<b64url payload>.<b64url sig>, payload
 *    "v1:<space>:<listener>:<expiry>", sig = the first 16 bytes of HMAC-SHA256 under the
 *    derived listener-token key. Forged, malformed or another Space's: 403. Expired: 410.
 *
 * 2. Every HLS object (part, segment, init section, blocking playlist) is fetched from
 *    the origin once per edge and cached under a key without the token. nginx's own cache
 *    lock would let the other requests re-check only every 500 ms, so they do not wait on
 *    it: the first request for a missing object "claims" it (a file created with O_EXCL,
 *    seen by every worker) and goes to the origin, which holds it until the part exists;
 *    the others wait here, looking for the cache file on a schedule aimed at the moment
 *    the part is due, then are answered from the cache.
 *
 * 3. /listen/{space}/{token}, the stream: the token is checked as in 1., then the request
 *    is handed to nchan (@tribune_stream), which writes every part the media process
 *    publishes into the one response. The publisher (/_tribune/publish/{space}) must send
 *    the publish key; the edge knows only its SHA-256.
 *
 * njs 0.7 gives every request its own VM: nothing is shared between requests but nginx
 * variables and the file system. Two costs shaped the code: an exception costs ~25 us (so
 * existence checks use statSync's throwIfNoEntry), and an `await` in a loop hundreds of
 * microseconds (so waiting is plain timer callbacks, ~4 us per check).
 */

var crypto = require('crypto');
var fs = require('fs');

var PREFIX = 'tbl_';
var SIG_BYTES = 16;
var B64URL = /^[A-Za-z0-9_-]+$/;
var DIGITS = /^[0-9]{1,9}$/;
var EXPIRY = /^[0-9]{1,15}$/;
var HLS_PATH = /^\/hls\/([^\/]+)\/([^\/]+)\/([^\/]+)$/;
var PART = /^part([0-9]{1,9})\.([0-9]{1,3})\.m4s$/;
var SEGMENT = /^seg([0-9]{1,9})\.m4s$/;
var LISTEN_PATH = /^\/listen\/([A-Za-z0-9_-]{1,64})\/([^\/]+)$/;
/* for the access log: the token of /listen/{space}/{token}..., and anything like a token */
var LISTEN_TOKEN = /^(\/listen\/[^\/]+\/)[^\/]+/;
var ANY_TOKEN = /\/tbl_[^\/]*/g;
var PUBLISH_HEADER = 'X-Tribune-Publish-Key';

/*
 * When a waiter looks for the cache file, relative to when the part is due (ms): few
 * looks where the part is unlikely to be, many where it usually lands (0-30 ms late).
 */
var CHECKS = [
    /* [until, every]: before `until` ms after due, look every `every` ms */
    [-5, 150],      /* asleep until just before it is due, with a look now and then */
    [40, 4],        /* around the moment it is due */
    [200, 10],      /* a late part: the origin is busy */
    [Infinity, 25]  /* a stalled origin: until the hold time runs out */
];
/* How many earlier parts date the next one (see nominalDue). */
var HISTORY = 3;
/* Claims of objects this many segments older are removed by whoever claims a new one. */
var CLAIM_KEEP_SEGMENTS = 3;
var NO_THROW = {throwIfNoEntry: false};

/* -- the listener token -------------------------------------------------------------- */

function verdict(ok, status, detail) {
    return {ok: ok, status: status, detail: detail};
}

function verifyToken(token, space, keyHex, nowSeconds) {
    var malformed = verdict(false, 403, 'malformed listener token');
    if (token.length > 1024 || token.slice(0, PREFIX.length) !== PREFIX) {
        return malformed;
    }
    var body = token.slice(PREFIX.length);
    var dot = body.indexOf('.');
    if (dot < 1 || body.indexOf('.', dot + 1) !== -1) {
        return malformed;
    }
    var payloadText = body.slice(0, dot);
    var sigText = body.slice(dot + 1);
    if (!B64URL.test(payloadText) || !B64URL.test(sigText)) {
        return malformed;
    }
    var payload = Buffer.from(payloadText, 'base64url');
    var sig = Buffer.from(sigText, 'base64url');
    var mac = crypto.createHmac('sha256', Buffer.from(keyHex, 'hex')).update(payload).digest();
    /* Every byte is compared whatever the first difference: no early exit. */
    var diff = sig.length ^ SIG_BYTES;
    for (var i = 0; i < SIG_BYTES; i++) {
        diff |= (sig[i] | 0) ^ mac[i];
    }
    if (diff !== 0) {
        return verdict(false, 403, 'listener token signature does not match: it was altered');
    }
    var fields = payload.toString().split(':');
    if (fields.length !== 4 || !fields[1] || !fields[2] || !EXPIRY.test(fields[3])) {
        return malformed;
    }
    if (fields[0] !== 'v1') {
        return verdict(false, 403, 'unsupported listener token version');
    }
    if (fields[1] !== space) {
        return verdict(false, 403, 'this listener token is for another Space');
    }
    if (Number(fields[3]) <= nowSeconds) {
        return verdict(false, 410, 'listener token has expired: join the Space again');
    }
    return verdict(true, 200, '');
}

var TITLES = {400: 'Bad request', 403: 'Forbidden', 404: 'Not found',
              405: 'Method not allowed', 410: 'Gone', 422: 'Invalid input'};

/* An RFC 9457 problem, like the origin's (api/problems.py). */
function problem(r, status, detail) {
    var title = TITLES[status] || 'Error';
    r.headersOut['Content-Type'] = 'application/problem+json';
    r.headersOut['Cache-Control'] = 'no-store';
    r.return(status, JSON.stringify({
        type: 'urn:tribune:problem:' + title.toLowerCase().split(' ').join('-'),
        title: title,
        status: status,
        detail: detail
    }));
}

/* -- what a request asks for ----------------------------------------------------------- */

function playlistKey(space, msn, part) {
    return space + '/live.m3u8?_HLS_msn=' + msn + (part === undefined ? '' : '&_HLS_part=' + part);
}

function partKey(space, msn, part) {
    return space + '/part' + msn + '.' + part + '.m4s';
}

/*
 * {space, token, kind, key, msn, part} for an /hls/ request, or {error, detail} for one
 * the edge answers itself. kind: "playlist" (not blocking), "blocking", "part", "segment"
 * or "init". key: the cache key, the same for every listener (no token in it).
 */
function parse(r) {
    var m = HLS_PATH.exec(r.uri);
    if (!m) {
        return {error: 404, detail: 'no such file in this presentation'};
    }
    var req = {space: m[1], token: m[2]};
    var file = m[3];
    var found;
    if (file === 'live.m3u8') {
        var msn = r.args._HLS_msn;
        var part = r.args._HLS_part;
        if (msn === undefined && part === undefined) {
            req.kind = 'playlist';
            req.key = req.space + '/live.m3u8';
            return req;
        }
        if (Array.isArray(msn) || Array.isArray(part)) {
            return {error: 422, detail: 'give _HLS_msn and _HLS_part at most once each'};
        }
        if (msn === undefined) {
            return {error: 422, detail: '_HLS_part needs _HLS_msn'};
        }
        if (!DIGITS.test(msn) || (part !== undefined && !DIGITS.test(part))) {
            return {error: 422, detail: '_HLS_msn and _HLS_part must be non-negative integers'};
        }
        req.kind = 'blocking';
        req.msn = Number(msn);
        req.part = part === undefined ? undefined : Number(part);
        req.key = playlistKey(req.space, req.msn, req.part);
    } else if ((found = PART.exec(file))) {
        req.kind = 'part';
        req.msn = Number(found[1]);
        req.part = Number(found[2]);
        req.key = partKey(req.space, req.msn, req.part);
    } else if ((found = SEGMENT.exec(file))) {
        req.kind = 'segment';
        req.msn = Number(found[1]);
        req.key = req.space + '/seg' + req.msn + '.m4s';
    } else if (file === 'init.mp4') {
        req.kind = 'init';
        req.key = req.space + '/init.mp4';
    } else {
        return {error: 404, detail: 'no such file in this presentation: ' + file};
    }
    return req;
}

/* js_set $tribune_cache_key: the request's cache key (no token in it). */
function cacheKey(r) {
    var req = parse(r);
    return req.error ? '' : req.key;
}

/* js_set $tribune_log_uri: the URI with the token left out, for the access log. */
function logUri(r) {
    var m = HLS_PATH.exec(r.uri);
    var uri = m ? '/hls/' + m[1] + '/-/' + m[3]
                : r.uri.replace(LISTEN_TOKEN, '$1-').replace(ANY_TOKEN, '/-');
    return r.variables.args ? uri + '?' + r.variables.args : uri;
}

/* -- the cache on disk ----------------------------------------------------------------- */

function md5(text) {
    return crypto.createHash('md5').update(text).digest('hex');
}

/* Where nginx keeps the cached response for a key (proxy_cache_path ... levels=1:2). */
function cacheFile(root, key) {
    var hash = md5(key);
    return root + '/' + hash.slice(-1) + '/' + hash.slice(-3, -1) + '/' + hash;
}

/* When the file at `path` was last written (ms since the epoch), or 0 if there is none. */
function changedAt(path) {
    var st = fs.statSync(path, NO_THROW);
    return st ? st.mtimeMs : 0;
}

/* [msn, index] of the part whose making brings this object into being; null for init. */
function targetPart(req, partsPerSegment) {
    if (req.kind === 'part' || (req.kind === 'blocking' && req.part !== undefined)) {
        return [req.msn, req.part];
    }
    if (req.kind === 'segment' || req.kind === 'blocking') {
        return [req.msn, partsPerSegment - 1];  /* a segment is complete with its last part */
    }
    return null;
}

/*
 * When the target part is due at this edge (ms since the epoch), or 0 if unknown. The
 * parts before it landed in the cache at known times (their files' mtime), and the origin
 * makes one every partUs, so part k-j projects part k to mtime + j * part. A part can be
 * late (the origin's 20 ms tick, a busy event loop) but never early, so the earliest
 * projection is the best guess. Blocking playlists date it too, for players that do not
 * fetch parts.
 */
function nominalDue(root, req, partsPerSegment, partUs) {
    var target = targetPart(req, partsPerSegment);
    if (!target) {
        return 0;
    }
    var best = 0;
    var keys = [partKey, playlistKey];
    for (var k = 0; k < keys.length && !best; k++) {
        var msn = target[0];
        var index = target[1];
        for (var j = 1; j <= HISTORY; j++) {
            if (index > 0) {
                index -= 1;
            } else if (msn > 0) {
                msn -= 1;
                index = partsPerSegment - 1;
            } else {
                break;
            }
            var landed = changedAt(cacheFile(root, keys[k](req.space, msn, index)));
            var projected = landed + j * partUs / 1000;
            if (landed && (!best || projected < best)) {
                best = projected;
            }
        }
    }
    return best;
}

/* -- claims: who fetches a missing object ---------------------------------------------- */

/*
 * True for exactly one request per object and edge: an O_EXCL create, atomic across
 * workers. A claim older than `staleMs` whose object never came (the fetch failed) is
 * taken over. The claim is looked at first, so that the many requests that find one do
 * not pay for a failed create.
 */
function claim(path, now, staleMs) {
    var made = changedAt(path);
    if (made) {
        if (now - made <= staleMs) {
            return false;
        }
        release(path);
    }
    try {
        fs.writeFileSync(path, '', {flag: 'wx'});
        return true;
    } catch (e) {
        return false;  /* someone was quicker */
    }
}

function release(path) {
    if (changedAt(path)) {
        try {
            fs.unlinkSync(path);
        } catch (e) {
            /* released meanwhile */
        }
    }
}

/* The same object CLAIM_KEEP_SEGMENTS segments earlier, whose claim nobody needs now. */
function oldKey(req) {
    if (req.msn === undefined || req.msn < CLAIM_KEEP_SEGMENTS) {
        return null;
    }
    var msn = req.msn - CLAIM_KEEP_SEGMENTS;
    if (req.kind === 'part') {
        return partKey(req.space, msn, req.part);
    }
    if (req.kind === 'segment') {
        return req.space + '/seg' + msn + '.m4s';
    }
    return playlistKey(req.space, msn, req.part);
}

/* -- the handler ----------------------------------------------------------------------- */

/* Where each kind of object is fetched from the origin, and where it is served once cached. */
var FILL = {blocking: '@tribune_fill_playlist', part: '@tribune_fill_media',
            segment: '@tribune_fill_media', init: '@tribune_fill_media'};
var CACHED = {blocking: '@tribune_cached_playlist', part: '@tribune_cached_media',
              segment: '@tribune_cached_media', init: '@tribune_cached_media'};

/* js_content for /hls/. */
function hls(r) {
    if (r.method !== 'GET' && r.method !== 'HEAD') {
        r.headersOut['Allow'] = 'GET, HEAD';
        return problem(r, 405, 'listening is read-only: use GET');
    }
    var req = parse(r);
    if (req.error) {
        return problem(r, req.error, req.detail);
    }
    var v = r.variables;
    var checked = verifyToken(req.token, req.space, v.tribune_listener_key, Date.now() / 1000);
    if (!checked.ok) {
        return problem(r, checked.status, checked.detail);
    }
    if (req.kind === 'playlist') {
        return r.internalRedirect('@tribune_playlist');
    }
    if (v.tribune_collapse !== 'hold') {
        return r.internalRedirect(FILL[req.kind]);
    }
    var file = cacheFile(v.tribune_cache_root, req.key);
    if (changedAt(file)) {
        return r.internalRedirect(CACHED[req.kind]);
    }
    var start = Date.now();
    var holdMs = Number(v.tribune_hold_ms);
    var claims = v.tribune_claims + '/';
    var claimed = claims + md5(req.key);
    if (claim(claimed, start, holdMs + 1000)) {
        var old = oldKey(req);
        if (old) {
            release(claims + md5(old));
        }
        return r.internalRedirect(FILL[req.kind]);
    }
    wait(r, req, file, claimed, start, holdMs);
}

/*
 * Another request is fetching the object: look for its cache file on the CHECKS schedule
 * around the moment it is due, then answer from the cache.
 */
function wait(r, req, file, claimed, start, holdMs) {
    var v = r.variables;
    var partMs = Number(v.tribune_part_us) / 1000;
    var due = nominalDue(v.tribune_cache_root, req, Number(v.tribune_parts_per_segment),
                         Number(v.tribune_part_us));
    if (!due || due < start - 4 * partMs || due > start + 2 * partMs) {
        due = start;  /* unknown, or implausible: look often from now on */
    }
    var deadline = start + holdMs;
    var checks = 0;

    function delay(now) {
        var at = now - due;
        for (var i = 0; i < CHECKS.length; i++) {
            if (at < CHECKS[i][0]) {
                return Math.max(1, Math.min(CHECKS[i][1], CHECKS[i][0] - at));
            }
        }
        return CHECKS[CHECKS.length - 1][1];
    }

    function check() {
        var now = Date.now();
        checks += 1;
        if (changedAt(file)) {
            release(claimed);  /* it came: the claim has done its job */
            v.tribune_waited = (now - start) + 'ms/' + checks + '/' + Math.round(now - due);
            return r.internalRedirect(CACHED[req.kind]);
        }
        if (now >= deadline) {
            /* Nothing came (the origin is slow or failing): nginx's own lock decides. */
            v.tribune_waited = (now - start) + 'ms/' + checks;
            return r.internalRedirect(FILL[req.kind]);
        }
        setTimeout(check, delay(now));
    }

    setTimeout(check, delay(start));
}

/* -- the stream ------------------------------------------------------------------------ */

/*
 * js_content for /listen/{space}/{token}. limit_req and limit_conn have run; the token is
 * checked, then nchan takes over (@tribune_stream, channel $tribune_stream_space). njs runs
 * once per listening session here, but its VM stays with the request until the stream
 * ends (docs/edges.md: about 40 KB per listener).
 */
function listen(r) {
    if (r.method !== 'GET') {
        r.headersOut['Allow'] = 'GET';
        return problem(r, 405, 'the stream is read-only: use GET');
    }
    var m = LISTEN_PATH.exec(r.uri);
    if (!m) {
        return problem(r, 404, 'no such stream: /listen/{space}/{listener token}');
    }
    var v = r.variables;
    var checked = verifyToken(m[2], m[1], v.tribune_listener_key, Date.now() / 1000);
    if (!checked.ok) {
        return problem(r, checked.status, checked.detail);
    }
    /* nchan would read a message id from these and start there, and nchan 1.3.6 can crash
     * on some (docs/edges.md): the edge decides where a stream starts. */
    var h = r.headersIn;
    if (h['If-Modified-Since'] !== undefined || h['If-None-Match'] !== undefined) {
        return problem(r, 400, 'a live stream takes no If-Modified-Since or If-None-Match');
    }
    v.tribune_stream_space = m[1];
    r.internalRedirect('@tribune_stream');
}

/* Equal strings, compared without an early exit. */
function sameText(a, b) {
    var diff = a.length ^ b.length;
    for (var i = 0; i < b.length; i++) {
        diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
    }
    return diff === 0;
}

/*
 * js_set $tribune_publish_verdict: "403" without the publish key, "405" for a method the
 * publisher does not take, "" to publish. The header's SHA-256 is compared with the one in
 * the config (the edge never holds the key itself).
 */
function publishVerdict(r) {
    var given = r.headersIn[PUBLISH_HEADER];
    var digest = crypto.createHash('sha256').update(given || '').digest('hex');
    if (!given || !sameText(digest, r.variables.tribune_publish_key_sha256)) {
        return '403';
    }
    if (r.method !== 'POST' && r.method !== 'DELETE' && r.method !== 'GET') {
        return '405';
    }
    return '';
}

export default {hls, cacheKey, logUri, listen, publishVerdict};
