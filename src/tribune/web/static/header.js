// The header every page shows: the brand, and who is signed in (or how to sign in).
// Usage: import { header } from "/static/header.js"; const me = await header();
import { api, whoami } from "/static/api.js";

function link(href, text) {
  return Object.assign(document.createElement("a"), { href, textContent: text });
}

/**
 * Fill ``<header id="site-header">`` and resolve to the signed-in person ({user,
 * csrf_token}) or null. A failure to ask is shown in the header, never thrown.
 */
export async function header() {
  const root = document.getElementById("site-header");
  if (!root) throw new Error('the page has no <header id="site-header">');
  root.className = "site-header";
  const brand = link("/", "Tribune");
  brand.className = "brand";
  const nav = document.createElement("nav");
  nav.setAttribute("aria-label", "Account");
  root.replaceChildren(brand, nav);
  let me = null;
  try {
    me = await whoami();
  } catch (err) {
    nav.append(Object.assign(document.createElement("span"), { className: "error", textContent: err.message }));
    return null;
  }
  const here = encodeURIComponent(location.pathname + location.search);
  if (me) {
    const name = Object.assign(document.createElement("span"), { className: "muted" });
    name.textContent = me.user.display_name;
    const out = Object.assign(document.createElement("button"), { type: "button", className: "secondary", textContent: "Log out" });
    out.addEventListener("click", async () => {
      try { await api("DELETE", "/api/session"); } finally { location.href = "/"; }
    });
    nav.append(link("/new", "New Space"), name, out);
  } else {
    nav.append(link(`/login?next=${here}`, "Log in"), link(`/signup?next=${here}`, "Sign up"));
  }
  return me;
}
