// Stepgate web app: live updates of a run page, and checks of a form before it is sent.
// No inline script anywhere: this file is the only script the pages load.
"use strict";

function liveRun(body) {
  const live = document.getElementById("live");
  const note = document.getElementById("live-note");
  if (!live || !window.EventSource) return;
  let busy = false;
  let again = false;
  async function redraw() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const response = await fetch(body.dataset.live, { credentials: "same-origin" });
      if (response.redirected || response.status === 401) { window.location.reload(); return; }
      if (response.ok) {
        const doc = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = doc.getElementById("live");
        if (fresh) live.replaceChildren(...fresh.childNodes);
        if (note) note.textContent = "Updated " + new Date().toLocaleTimeString();
      }
    } finally {
      busy = false;
      if (again) { again = false; redraw(); }
    }
  }
  const closed = new Set(["completed", "failed", "cancelled"]);
  const events = new EventSource(body.dataset.events);
  let first = true;
  function ended(state) {
    if (closed.has(state)) events.close();  // the run is over: nothing more will come
  }
  events.addEventListener("status", (e) => {
    if (!first) redraw();
    first = false;
    ended(JSON.parse(e.data).state);
  });
  events.addEventListener("patch", (e) => {
    redraw();
    for (const op of JSON.parse(e.data)) if (op.path === "/state") ended(op.value);
  });
  events.addEventListener("error", (e) => {
    if (e.data) {
      events.close();
      if (note) note.textContent = "Live updates stopped: " + (JSON.parse(e.data).message || "");
      redraw();
    }
  });
}

function checkJson(form) {
  form.addEventListener("submit", (event) => {
    for (const area of form.querySelectorAll("textarea[data-json]")) {
      area.setCustomValidity("");
      if (area.value.trim() === "" && !area.required) continue;
      try { JSON.parse(area.value); } catch (err) {
        area.setCustomValidity("Not valid JSON: " + err.message);
        area.reportValidity();
        event.preventDefault();
        return;
      }
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  if (document.body.dataset.live) liveRun(document.body);
  for (const form of document.querySelectorAll("form")) checkJson(form);
});
