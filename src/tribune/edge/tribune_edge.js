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
 * 4. Joins (POST /api/spaces/{space}/join), the door a crowd or an attack comes through:
 *    the body is checked as the origin would (JSON, only `ticket` and `pow`), a waiting-room
 *    ticket as tribune/admission/tickets.py does (and refused once this edge saw it
 *    admitted), and, when the Space's admission document says attack mode, an anonymous
 *    join needs a proof of work (tribune/admission/pow.py), used once per edge. What passes
 *    goes to an origin; the rest is answered here, as the origin would answer it.
 *
 * 5. Heartbeats (and reactions sent with a listener token) need a valid listener token for
 *    their Space in `Authorization: Bearer`; nginx limits them per token with the listener
 *    id this file extracts.
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

/*
 * The payload of "<prefix><b64url payload>.<b64url sig>" when sig is the first 16 bytes of
 * HMAC-SHA256 of the payload under the key (compared without an early exit: every byte,
 * and the length, fold into one difference); MALFORMED or ALTERED if not.
 */
var MALFORMED = 1;
var ALTERED = 2;

function signedPayload(text, prefix, keyHex) {
    if (text.slice(0, prefix.length) !== prefix) {
        return MALFORMED;
    }
    var body = text.slice(prefix.length);
    var dot = body.indexOf('.');
    if (dot < 1 || body.indexOf('.', dot + 1) !== -1) {
        return MALFORMED;
    }
    var payloadText = body.slice(0, dot);
    var sigText = body.slice(dot + 1);
    if (!B64URL.test(payloadText) || !B64URL.test(sigText)) {
        return MALFORMED;
    }
    var payload = Buffer.from(payloadText, 'base64url');
    var sig = Buffer.from(sigText, 'base64url');
    var mac = crypto.createHmac('sha256', Buffer.from(keyHex, 'hex')).update(payload).digest();
    var diff = sig.length ^ SIG_BYTES;
    for (var i = 0; i < SIG_BYTES; i++) {
        diff |= (sig[i] | 0) ^ mac[i];
    }
    return diff === 0 ? payload : ALTERED;
}

/* {ok, status, detail, listener} for a listener token presented for `space`. */
function verifyToken(token, space, keyHex, nowSeconds) {
    var malformed = verdict(false, 403, 'malformed listener token');
    if (token.length > 1024) {
        return malformed;
    }
    var payload = signedPayload(token, PREFIX, keyHex);
    if (payload === MALFORMED) {
        return malformed;
    }
    if (payload === ALTERED) {
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
    var ok = verdict(true, 200, '');
    ok.listener = fields[2];
    return ok;
}

var TITLES = {400: 'Bad request', 401: 'Not authenticated', 403: 'Forbidden',
              404: 'Not found', 405: 'Method not allowed', 409: 'Conflict', 410: 'Gone',
              413: 'Payload too large', 415: 'Unsupported media type', 422: 'Invalid input'};

/*
 * An RFC 9457 problem, like the origin's (api/problems.py): the type is the title's slug.
 * `extra` adds members (instance, challenge, errors...).
 */
function answer(r, status, title, detail, extra) {
    var body = {
        type: 'urn:tribune:problem:' + title.toLowerCase().split(' ').join('-'),
        title: title,
        status: status,
        detail: detail
    };
    if (extra) {
        var names = Object.keys(extra);
        for (var i = 0; i < names.length; i++) {
            body[names[i]] = extra[names[i]];
        }
    }
    r.headersOut['Content-Type'] = 'application/problem+json';
    r.headersOut['Cache-Control'] = 'no-store';
    r.return(status, JSON.stringify(body));
}

/* The same with the status's usual title and no instance (the URI may hold a token). */
function problem(r, status, detail) {
    answer(r, status, TITLES[status] || 'Error', detail);
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
    var checked = streamCheck(r);
    if (checked.status === 404) {
        return problem(r, 404, 'no such stream: /listen/{space}/{listener token}');
    }
    if (!checked.ok) {
        return problem(r, checked.status, checked.detail);
    }
    /* nchan would read a message id from these and start there, and nchan 1.3.6 can crash
     * on some (docs/edges.md): the edge decides where a stream starts. */
    var h = r.headersIn;
    if (h['If-Modified-Since'] !== undefined || h['If-None-Match'] !== undefined) {
        return problem(r, 400, 'a live stream takes no If-Modified-Since or If-None-Match');
    }
    r.variables.tribune_stream_space = checked.space;
    r.internalRedirect('@tribune_stream');
}

/*
 * The token of /listen/{space}/{token}, checked once per request: the limit_conn key
 * (streamListener, before the handler runs) and the handler share the verdict. njs 0.7
 * gives a request one VM for all its handlers, so a global is per request.
 */
var streamVerdict = null;

function streamCheck(r) {
    if (streamVerdict === null) {
        var m = LISTEN_PATH.exec(r.uri);
        streamVerdict = m ? verifyToken(m[2], m[1], r.variables.tribune_listener_key,
                                        Date.now() / 1000)
                          : verdict(false, 404, '');
        streamVerdict.space = m ? m[1] : '';
    }
    return streamVerdict;
}

/*
 * js_set $tribune_stream_listener: the listener id of a valid stream token, the key of the
 * per-token limit_conn (a replayed token cannot open hundreds of streams); empty for the
 * others, which the handler refuses anyway.
 */
function streamListener(r) {
    var checked = streamCheck(r);
    return checked.ok ? checked.listener : '';
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

/* -- joins: the body, waiting-room tickets, proofs of work ------------------------------ */

var TICKET_PREFIX = 'tbq_';
/* tribune/admission/tickets.py MAX_TICKET_CHARS and pow.py MAX_POW_CHARS */
var MAX_TICKET_CHARS = 512;
var MAX_POW_CHARS = 94;
var POW_FORMAT = /^([0-9]{1,12}):([A-Za-z0-9_-]{8,64}):([0-9]{1,16})$/;
var POW_WINDOW_S = 60;
var POW_ALGORITHM = 'sha256-leading-zero-bits';
/* what may name a Space, a ticket or a file here */
var NAME = /^[A-Za-z0-9_-]{1,64}$/;
var COUNT = /^[0-9]{1,15}$/;
var SPACE_PATH = /^\/api\/spaces\/([^\/]+)\/[a-z]+$/;
var SESSION_COOKIE = 'tribune_session=';
var API_TOKEN_PREFIX = 'tbt_';
var JOIN_FIELDS = {ticket: MAX_TICKET_CHARS, pow: MAX_POW_CHARS};

/* The Space of /api/spaces/{space}/{action}, or '' if it cannot name one. */
function spaceOf(uri) {
    var m = SPACE_PATH.exec(uri);
    return m && NAME.test(m[1]) ? m[1] : '';
}

function refusal(status, title, detail, extra) {
    return {ok: false, status: status, title: title, detail: detail, extra: extra};
}

/* Answer a refusal, with the path as the problem's instance (as the origin does). */
function refuse(r, no) {
    var extra = no.extra || {};
    extra.instance = r.uri;
    if (no.status === 401) {
        r.headersOut['WWW-Authenticate'] = 'Bearer realm="tribune"';
    }
    answer(r, no.status, no.title, no.detail, extra);
}

function invalid(field, message) {
    return refusal(422, 'Invalid input', field + ': ' + message,
                   {errors: [{field: field, message: message}]});
}

/*
 * {ticket, pow} from a join's body, as the origin reads it (api/fastpath.py, JoinIn): no
 * body, "{}" or only whitespace is a first join; otherwise JSON (415 for another type, 400
 * if it does not parse) with at most the two optional string fields (422).
 */
function joinBody(r) {
    var text = r.requestText;
    if (!text) {
        return {};
    }
    var media = (r.headersIn['Content-Type'] || '').split(';')[0].trim().toLowerCase();
    if (media !== 'application/json') {
        return refusal(415, 'Unsupported media type',
                       'send the body as application/json, not ' + (media.slice(0, 64) || 'nothing'));
    }
    var trimmed = text.trim();
    if (trimmed === '' || trimmed === '{}') {
        return {};
    }
    var parsed;
    try {
        parsed = JSON.parse(trimmed);
    } catch (e) {
        return refusal(400, 'Malformed JSON', 'request body is not valid JSON: ' + e.message);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        return invalid('body', 'Input should be an object');
    }
    var body = {};
    var names = Object.keys(parsed);
    for (var i = 0; i < names.length; i++) {
        var name = names[i];
        var value = parsed[name];
        if (!JOIN_FIELDS.hasOwnProperty(name)) {  /* not even "constructor" */
            return invalid('body.' + name.slice(0, 64), 'Extra inputs are not permitted');
        }
        var most = JOIN_FIELDS[name];
        if (value === null) {
            continue;
        }
        if (typeof value !== 'string') {
            return invalid('body.' + name, 'Input should be a valid string');
        }
        if (value.length < 1) {
            return invalid('body.' + name, 'String should have at least 1 character');
        }
        if (value.length > most) {
            return invalid('body.' + name, 'String should have at most ' + most + ' characters');
        }
        body[name] = value;
    }
    return body;
}

/*
 * {ok, id} for a waiting-room ticket presented for `space`, checked as
 * tribune/admission/tickets.py does (Tickets.verify), with its words: forged, altered,
 * malformed or another Space's: 403 "Invalid ticket"; too old: 410 "Ticket expired".
 */
function verifyTicket(text, space, keyHex, ttlS, nowS) {
    if (text.length > MAX_TICKET_CHARS) {
        return refusal(403, 'Invalid ticket', 'this is not a waiting-room ticket: join without it');
    }
    var payload = signedPayload(text, TICKET_PREFIX, keyHex);
    if (payload === MALFORMED) {
        return refusal(403, 'Invalid ticket', 'this is not a waiting-room ticket: join without it');
    }
    if (payload === ALTERED) {
        return refusal(403, 'Invalid ticket',
                       'the ticket\'s signature does not match: it was altered');
    }
    /* v1:<space>:<ticket id>:<l|p>:<place>:<issued> */
    var f = payload.toString().split(':');
    if (f.length !== 6 || !f[1] || !NAME.test(f[2]) || (f[3] !== 'l' && f[3] !== 'p')
            || !COUNT.test(f[4]) || !COUNT.test(f[5])) {
        return refusal(403, 'Invalid ticket', 'malformed waiting-room ticket');
    }
    if (f[0] !== 'v1') {
        return refusal(403, 'Invalid ticket', 'unsupported ticket version \'' + f[0] + '\'');
    }
    if (f[1] !== space) {
        return refusal(403, 'Invalid ticket', 'this ticket is for another Space');
    }
    if (Number(f[5]) + ttlS <= nowS) {
        return refusal(410, 'Ticket expired',
                       'your place in line has expired: join again, without the ticket');
    }
    return {ok: true, id: f[2]};
}

function powWindow(nowS) {
    return Math.floor(nowS / POW_WINDOW_S);
}

/*
 * "tribune-pow:v1:{space}:{w}:{seed}:", the seed an HMAC under the derived pow key. A
 * refused solution needs it twice (to check, and for the fresh challenge): kept for the
 * request (an HMAC here costs about 10 us).
 */
var prefixes = {};

function powPrefix(keyHex, space, w) {
    var known = prefixes[w];
    if (known === undefined) {
        var mac = crypto.createHmac('sha256', Buffer.from(keyHex, 'hex'))
            .update(space + ':' + w).digest();
        known = prefixes[w] = 'tribune-pow:v1:' + space + ':' + w + ':'
            + mac.slice(0, 12).toString('base64url') + ':';
    }
    return known;
}

/* A fresh challenge, as tribune/admission/pow.py Pow.challenge makes it. */
function challenge(keyHex, space, bits, nowS) {
    var w = powWindow(nowS);
    return {algorithm: POW_ALGORITHM, bits: bits, window: w, prefix: powPrefix(keyHex, space, w),
            expires_at: (w + 2) * POW_WINDOW_S};
}

function zeroBits(digest) {
    var bits = 0;
    for (var i = 0; i < digest.length; i++) {
        if (digest[i] !== 0) {
            return bits + Math.clz32(digest[i]) - 24;
        }
        bits += 8;
    }
    return bits;
}

/*
 * {ok, window, rand, bucket} for a solution "{w}:{rand}:{n}", checked as Pow.check does:
 * the format, w this minute's window or the one before, >= bits leading zero bits; or
 * {detail} saying what is wrong, in the origin's words.
 */
function checkPow(solution, space, keyHex, bits, nowS) {
    var m = POW_FORMAT.exec(solution);
    if (!m) {
        return {detail: 'malformed proof of work: give {window}:{rand}:{n}'};
    }
    var w = Number(m[1]);
    var now = powWindow(nowS);
    if (w !== now && w !== now - 1) {
        return {detail: 'this proof of work is for another minute: solve anew'};
    }
    var digest = crypto.createHash('sha256')
        .update(powPrefix(keyHex, space, w) + m[2] + ':' + m[3]).digest();
    if (zeroBits(digest) < bits) {
        return {detail: 'this proof of work has fewer than ' + bits + ' zero bits'};
    }
    /* The last byte of the hash picks the mark's directory: spread evenly, and not the
     * client's choice. */
    return {ok: true, window: w, rand: m[2], bucket: (256 + digest[31]).toString(16).slice(1)};
}

/* -- marks: what this edge remembers across requests and workers ----------------------- */

/*
 * An empty file per remembered thing (a burned proof of work, an admitted ticket), created
 * with O_EXCL so that exactly one request makes it, in root/{window}/{bucket}/. Windows
 * before `keepFrom` are swept by whoever makes a new bucket directory, one bucket at a
 * time, so that no request pays for a whole window's files. True if this call made the
 * mark, false if it was there. A mark that cannot be written (a full disk) counts as made:
 * the origin checks again.
 */
function mark(r, root, window, bucket, name, keepFrom) {
    var dir = root + '/' + window + '/' + bucket;
    var path = dir + '/' + name;
    if (fs.statSync(path, NO_THROW)) {
        return false;
    }
    if (!fs.statSync(dir, NO_THROW)) {
        makeDir(root + '/' + window);
        makeDir(dir);
        sweep(root, bucket, keepFrom);
    }
    try {
        fs.writeFileSync(path, '', {flag: 'wx'});
        return true;
    } catch (e) {
        if (e.code === 'EEXIST') {
            return false;  /* another request was quicker */
        }
        r.error('tribune: cannot write ' + path + ': ' + e.message);
        return true;
    }
}

function marked(root, window, bucket, name) {
    return fs.statSync(root + '/' + window + '/' + bucket + '/' + name, NO_THROW) !== undefined;
}

function makeDir(path) {
    if (!fs.statSync(path, NO_THROW)) {
        try {
            fs.mkdirSync(path);
        } catch (e) {
            /* made meanwhile, by another worker */
        }
    }
}

/* Remove `bucket` from every window before keepFrom, and windows left empty. */
function sweep(root, bucket, keepFrom) {
    var windows;
    try {
        windows = fs.readdirSync(root);
    } catch (e) {
        return;  /* no root: nothing to sweep (and mark() says what it cannot write) */
    }
    for (var i = 0; i < windows.length; i++) {
        if (!(Number(windows[i]) < keepFrom)) {
            continue;
        }
        var old = root + '/' + windows[i];
        removeDir(old + '/' + bucket);
        var st = fs.statSync(old, NO_THROW);
        if (st && st.nlink <= 2) {  /* no bucket left in it */
            try {
                fs.rmdirSync(old);
            } catch (e) {
                /* swept meanwhile, or a file system without directory link counts */
            }
        }
    }
}

function removeDir(dir) {
    if (!fs.statSync(dir, NO_THROW)) {
        return;
    }
    var names;
    try {
        names = fs.readdirSync(dir);
    } catch (e) {
        return;  /* removed meanwhile */
    }
    for (var i = 0; i < names.length; i++) {
        try {
            fs.unlinkSync(dir + '/' + names[i]);
        } catch (e) {
            /* removed meanwhile */
        }
    }
    try {
        fs.rmdirSync(dir);
    } catch (e) {
        /* another request put a mark in it meanwhile: the next sweep takes it */
    }
}

/*
 * Admitted tickets are remembered in windows as long as a ticket lives (its TTL): a mark
 * made in window w is looked for until window w + 1 ends, so for at least the TTL. The
 * ticket's own issue time cannot name the window: a ticket shown while waiting is renewed
 * with the same id.
 */
function ticketWindow(v, nowS) {
    return Math.floor(nowS / Number(v.tribune_ticket_ttl));
}

function ticketUsed(v, id, nowS) {
    var w = ticketWindow(v, nowS);
    var root = v.tribune_ticket_marks;
    return marked(root, w, id.charAt(0), id) || marked(root, w - 1, id.charAt(0), id);
}

/* -- the join handler -------------------------------------------------------------------- */

function hasCredentials(r) {
    if (r.headersIn['Authorization'] !== undefined) {
        return true;
    }
    var cookie = r.headersIn['Cookie'];
    return cookie !== undefined && cookie.indexOf(SESSION_COOKIE) !== -1;
}

function powRequired(r, space, bits, nowS, detail) {
    refuse(r, refusal(403, 'Proof of work required', detail, {
        challenge: challenge(r.variables.tribune_pow_key, space, bits, nowS)
    }));
}

/*
 * js_content for POST /api/spaces/{space}/join (limit_req has run; the body, at most a
 * kilobyte, is read). Requests with credentials pass once their body and ticket are good:
 * the origin decides about accounts (trusted ones skip the proof of work; stage members
 * may reuse a ticket). An anonymous first join asks the Space's admission document
 * (cached a second for the whole edge) whether attack mode is on.
 */
function join(r) {
    if (r.method !== 'POST') {
        r.headersOut['Allow'] = 'POST';
        return refuse(r, refusal(405, 'Method not allowed', r.method + ' is not allowed on '
                                 + 'a join: POST it'));
    }
    var space = spaceOf(r.uri);
    if (!space) {
        return refuse(r, refusal(404, 'Not found', 'there is no Space with that id'));
    }
    var body = joinBody(r);
    if (body.ok === false) {
        return refuse(r, body);
    }
    var v = r.variables;
    var nowS = Date.now() / 1000;
    var credentials = hasCredentials(r);
    if (body.ticket !== undefined) {
        var ticket = verifyTicket(body.ticket, space, v.tribune_ticket_key,
                                  Number(v.tribune_ticket_ttl), nowS);
        if (!ticket.ok) {
            return refuse(r, ticket);
        }
        if (!credentials && ticketUsed(v, ticket.id, nowS)) {
            return refuse(r, refusal(409, 'Ticket already used',
                                     'this ticket was already used: join again, without it'));
        }
        v.tribune_join_ticket = ticket.id;
        return r.internalRedirect('@tribune_join_ticket');
    }
    if (credentials) {
        return r.internalRedirect('@tribune_join');
    }
    r.subrequest('/_tribune/admission/' + space, {method: 'GET'}, function (reply) {
        joinAnonymous(r, space, body.pow, reply, nowS);
    });
}

/* An anonymous first join, once the admission document is in. */
function joinAnonymous(r, space, solution, reply, nowS) {
    var doc = null;
    try {
        doc = JSON.parse(reply.responseText);
    } catch (e) {
        /* no document (the origin is unreachable): below */
    }
    if (reply.status === 404) {
        return refuse(r, refusal(404, 'Not found', doc && typeof doc.detail === 'string'
                                 ? doc.detail : 'there is no Space with that id'));
    }
    /* Anything but a clear "on" passes: the origin checks attack mode itself too. */
    var bits = reply.status === 200 && doc && doc.attack_mode === true && doc.challenge
        ? doc.challenge.bits : 0;
    if (typeof bits !== 'number' || !(bits >= 1 && bits <= 32)) {
        return r.internalRedirect('@tribune_join');
    }
    if (solution === undefined) {
        return powRequired(r, space, bits, nowS,
                           'this Space is taking joins under attack protection: solve the '
                           + 'challenge (your browser does it in a moment) and join again with it');
    }
    var v = r.variables;
    var checked = checkPow(solution, space, v.tribune_pow_key, bits, nowS);
    if (!checked.ok) {
        return powRequired(r, space, bits, nowS, checked.detail);
    }
    if (!mark(r, v.tribune_pow_marks, checked.window, checked.bucket,
              space + '.' + checked.rand, powWindow(nowS) - 1)) {
        return powRequired(r, space, bits, nowS, 'this proof of work was already used: solve anew');
    }
    r.internalRedirect('@tribune_join');
}

/*
 * js_header_filter of a join that carried a ticket: admitted (201) or already used (409)
 * at the origin, its id is remembered, and later copies are answered here.
 */
function joinAnswered(r) {
    var id = r.variables.tribune_join_ticket;
    if ((r.status !== 201 && r.status !== 409) || !id) {
        return;
    }
    var w = ticketWindow(r.variables, Date.now() / 1000);
    mark(r, r.variables.tribune_ticket_marks, w, id.charAt(0), id, w - 1);
}

/* -- heartbeats and reactions: the listener token in Authorization ------------------- */

/*
 * {status, ...} for the request's Authorization header: 0 without one (or with a bearer
 * token that is not a listener token: `other`), 200 with a valid listener token for the
 * path's Space (and its `listener`), else 401, 403 or 410 with a detail. Checked once per
 * request: the per-token limit's key (bearerListener) and the handler share it.
 */
var bearerVerdict = null;

function bearerCheck(r) {
    if (bearerVerdict !== null) {
        return bearerVerdict;
    }
    var header = r.headersIn['Authorization'];
    if (header === undefined) {
        bearerVerdict = {status: 0};
        return bearerVerdict;
    }
    var gap = header.indexOf(' ');
    var scheme = gap < 0 ? header : header.slice(0, gap);
    var token = gap < 0 ? '' : header.slice(gap + 1).trim();
    if (scheme.toLowerCase() !== 'bearer' || !token) {
        bearerVerdict = {status: 401, title: 'Not authenticated',
                         detail: 'Authorization must be \'Bearer <token>\''};
    } else if (token.slice(0, PREFIX.length) !== PREFIX) {
        bearerVerdict = {status: 0, other: token};
    } else {
        bearerVerdict = verifyToken(token, spaceOf(r.uri), r.variables.tribune_listener_key,
                                    Date.now() / 1000);
        bearerVerdict.title = TITLES[bearerVerdict.status];
    }
    return bearerVerdict;
}

/* js_set $tribune_bearer_listener: the key of the per-token limit ('' is not counted). */
function bearerListener(r) {
    var checked = bearerCheck(r);
    return checked.status === 200 ? checked.listener : '';
}

function notAuthenticated(r, detail) {
    refuse(r, refusal(401, 'Not authenticated', detail));
}

function onlyPost(r) {
    if (r.method === 'POST') {
        return false;
    }
    r.headersOut['Allow'] = 'POST';
    refuse(r, refusal(405, 'Method not allowed', r.method + ' is not allowed here: POST it'));
    return true;
}

/* js_content for POST /api/spaces/{space}/heartbeat: only with a valid listener token. */
function heartbeat(r) {
    if (onlyPost(r)) {
        return;
    }
    var checked = bearerCheck(r);
    if (checked.status === 200) {
        return r.internalRedirect('@tribune_api');
    }
    if (checked.status === 0) {
        return notAuthenticated(r, 'send \'Authorization: Bearer <listener token>\' from the join');
    }
    refuse(r, checked);
}

/*
 * js_content for POST /api/spaces/{space}/reactions: a listener token must be valid; an
 * API token or a session cookie (signed-in people) passes, the origin checks those.
 */
function react(r) {
    if (onlyPost(r)) {
        return;
    }
    var checked = bearerCheck(r);
    if (checked.status === 200) {
        return r.internalRedirect('@tribune_api');
    }
    if (checked.status !== 0) {
        return refuse(r, checked);
    }
    if (checked.other !== undefined) {
        if (checked.other.slice(0, API_TOKEN_PREFIX.length) === API_TOKEN_PREFIX) {
            return r.internalRedirect('@tribune_api');
        }
        return notAuthenticated(r, 'bearer token is neither an API token nor a listener token');
    }
    if (hasCredentials(r)) {
        return r.internalRedirect('@tribune_api');
    }
    notAuthenticated(r, 'log in, or send \'Authorization: Bearer <listener token>\' from the join');
}

export default {hls, cacheKey, logUri, listen, streamListener, publishVerdict, join,
                joinAnswered, heartbeat, react, bearerListener};
