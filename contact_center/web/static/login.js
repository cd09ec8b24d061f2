import { call, ApiError } from "/static/api.js";

const form = document.getElementById("login-form");
const error = document.getElementById("login-error");

// The same rule as the server's (contact_center/web/auth.py `safe_next`): one leading "/",
// then printable ASCII without "\". Browsers read "\" as "/" and drop tabs and newlines,
// so "/\evil.example" or "/<TAB>/evil.example" would leave the site.
const SAFE_PATH = /^\/(?![\/\\])[\x21-\x5b\x5d-\x7e]*$/;

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  try {
    const next = new URLSearchParams(location.search).get("next");
    const session = await call("POST", "/api/v1/auth/login", {
      username: document.getElementById("username").value,
      password: document.getElementById("password").value,
      ...(next && next.length <= 2000 ? { next } : {}),
    });
    // The server answers where to go: the page asked for when it is on this site, else
    // the user's home page. Checked again here so a stale server cannot bounce us away.
    const home = session.user.role === "agent" ? "/desktop" : "/wallboard";
    location.href = SAFE_PATH.test(session.next || "") ? session.next : home;
  } catch (e) {
    error.textContent = e instanceof ApiError ? e.message : "cannot reach the server";
  }
});
