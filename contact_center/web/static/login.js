import { call, ApiError } from "/static/api.js";

const form = document.getElementById("login-form");
const error = document.getElementById("login-error");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  try {
    const session = await call("POST", "/api/v1/auth/login", {
      username: document.getElementById("username").value,
      password: document.getElementById("password").value,
    });
    const next = new URLSearchParams(location.search).get("next");
    // Only a path on this site: never bounce the user to another origin.
    const safeNext = next && next.startsWith("/") && !next.startsWith("//") ? next : null;
    const home = session.user.role === "agent" ? "/desktop" : "/wallboard";
    location.href = safeNext || home;
  } catch (e) {
    error.textContent = e instanceof ApiError ? e.message : "cannot reach the server";
  }
});
