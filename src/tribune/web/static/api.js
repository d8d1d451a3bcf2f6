// Talking to Tribune's API from a page: JSON in and out, the CSRF header on writes made
// with the session cookie, and errors turned into sentences a person can act on.

const CSRF_COOKIE = "tribune_csrf";

function csrfToken() {
  const match = document.cookie.split("; ").find((c) => c.startsWith(`${CSRF_COOKIE}=`));
  return match ? decodeURIComponent(match.slice(CSRF_COOKIE.length + 1)) : null;
}

/** An API error: ``status``, ``problem`` (the problem+json body) and a readable message. */
export class ApiError extends Error {
  constructor(status, problem, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.problem = problem;
  }
}

/** Words for an error, for people: what happened and, where there is one, what to do. */
export function describe(status, problem) {
  const detail = problem && (problem.detail || problem.title);
  switch (status) {
    case 0: return "Tribune cannot be reached. Check your connection; we will keep trying.";
    case 401: return detail || "Please log in first.";
    case 403: return detail || "You are not allowed to do that here.";
    case 404: return detail || "That does not exist (any more).";
    case 409: return detail || "That clashes with what just happened; the page has been updated.";
    case 410: return detail || "That has ended.";
    case 413: return "That is too large to send.";
    case 422: return detail || "Some of what you entered is not valid.";
    case 429: return detail || "That was too often. Wait a moment and try again.";
    default:
      if (status >= 500) return "Something went wrong on Tribune's side. Please try again.";
      return detail || `The request failed (${status}).`;
  }
}

/**
 * Call the API. ``body`` is sent as JSON; ``token`` as a bearer (listener tokens);
 * otherwise the session cookie and its CSRF header are used. Resolves to the parsed
 * JSON (or null for 204), rejects with an ApiError.
 */
export async function api(method, path, { body, token, headers = {}, signal } = {}) {
  const sent = { Accept: "application/json", ...headers };
  if (body !== undefined) sent["Content-Type"] = "application/json";
  if (token) sent.Authorization = `Bearer ${token}`;
  else if (method !== "GET" && method !== "HEAD") {
    const csrf = csrfToken();
    if (csrf) sent["X-CSRF-Token"] = csrf;
  }
  let res;
  try {
    res = await fetch(path, {
      method, headers: sent, credentials: "same-origin", signal,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, null, describe(0, null));
  }
  let parsed = null;
  const type = res.headers.get("Content-Type") || "";
  if (res.status !== 204 && type.includes("json")) parsed = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, parsed, describe(res.status, parsed));
  return parsed;
}

/** The signed-in person ({user, csrf_token}) or null. */
export async function whoami() {
  // The CSRF cookie is set and cleared with the session: without it nobody is signed in,
  // and asking would only make the browser log a 401 in its console.
  if (!csrfToken()) return null;
  try { return await api("GET", "/api/me"); }
  catch (err) { if (err.status === 401) return null; throw err; }
}
