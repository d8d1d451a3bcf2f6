// Attack mode from the page's side: a join refused with this problem type carries a
// challenge; pow-worker.js solves it in a Web Worker (the page stays responsive) and the
// join is made again with { pow }. One worker per solve, ended as soon as it answers or
// the solve is no longer wanted.

export const POW_PROBLEM = "urn:tribune:problem:proof-of-work-required";
const WORKER_URL = "/static/space/pow-worker.js";
// A challenge is valid until the end of the minute after the one it was made in: at least
// 60 s whenever it was fetched. Past that an answer may be refused anyway: get a new one.
const MAX_SOLVE_MS = 60_000;

/**
 * Solve ``challenge`` in a worker: resolves to { pow: "w:rand:n" | null, hashes, ms }
 * (pow null: the challenge was not solvable here, ask for a new one), rejects with an
 * AbortError when ``signal`` aborts (the worker is terminated) or an Error if the worker
 * could not run.
 */
export function solveChallenge(challenge, signal = undefined, { maxMs = MAX_SOLVE_MS } = {}) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new DOMException("stopped", "AbortError"));
      return;
    }
    const worker = new Worker(WORKER_URL, { type: "module", name: "tribune-pow" });
    const finish = () => {
      worker.terminate();
      signal?.removeEventListener("abort", onAbort);
    };
    const onAbort = () => {
      finish();
      reject(new DOMException("stopped", "AbortError"));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    worker.onmessage = (event) => {
      finish();
      resolve(event.data);
    };
    worker.onerror = (event) => {
      event.preventDefault?.();
      finish();
      const why = event.message || "it could not start";
      reject(new Error(`This browser could not run the connection check (${why}). Reload the page to try again.`));
    };
    worker.postMessage({ challenge, maxMs });
  });
}
