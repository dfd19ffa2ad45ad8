// Countersign's reviewer UI: live updates, keyboard shortcuts, countdowns and the argument
// editor's checks. Every flow also works without this file, as plain forms and links.
"use strict";

(function () {
  const page = document.body.dataset.page;

  // ---- countdowns ---------------------------------------------------------------------
  function words(seconds) {
    const s = Math.abs(Math.round(seconds));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
    return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
  }
  function tick() {
    const now = Date.now();
    for (const el of document.querySelectorAll("[data-deadline]")) {
      const deadline = Date.parse(el.dataset.deadline);
      if (Number.isNaN(deadline)) continue;
      const left = (deadline - now) / 1000;
      el.textContent = left >= 0 ? words(left) + " left" : "overdue by " + words(left);
      el.classList.toggle("urgent", left < 300);
    }
  }
  tick();
  setInterval(tick, 1000);

  // ---- keyboard shortcuts ---------------------------------------------------------------
  const help = document.getElementById("help");
  function typing(target) {
    return target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement ||
      target instanceof HTMLSelectElement || (target && target.isContentEditable);
  }
  function click(selector) {
    const el = document.querySelector(selector);
    if (el) { el.click(); return true; }
    return false;
  }
  let pendingG = false;

  // The queue's selected row.
  function rows() { return Array.from(document.querySelectorAll(".queue .row")); }
  let selectedId = null;
  function select(index) {
    const all = rows();
    if (all.length === 0) return;
    const i = Math.max(0, Math.min(all.length - 1, index));
    for (const row of all) row.classList.remove("selected");
    all[i].classList.add("selected");
    selectedId = all[i].dataset.id;
    all[i].querySelector("a").focus({ preventScroll: false });
  }
  function selectedIndex() { return rows().findIndex((r) => r.dataset.id === selectedId); }

  document.addEventListener("keydown", (event) => {
    if (event.metaKey || event.ctrlKey || event.altKey) return;
    if (typing(event.target)) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    const key = event.key;
    if (pendingG) {
      pendingG = false;
      if (key === "q") { location.href = "/queue"; event.preventDefault(); }
      return;
    }
    if (key === "g") { pendingG = true; return; }
    if (key === "?") {
      if (help && !help.open) help.showModal();
      event.preventDefault();
      return;
    }
    let handled = false;
    if (page === "queue" || page === "reviews") {
      if (key === "j") { select(selectedIndex() + 1); handled = true; }
      else if (key === "k") { select(selectedIndex() <= 0 ? 0 : selectedIndex() - 1); handled = true; }
      else if (key === "Enter" && selectedId) {
        const row = rows()[selectedIndex()];
        if (row) { location.href = row.querySelector("a").href; handled = true; }
      }
    } else if (page === "action") {
      if (key === "a") {
        const confirm = document.querySelector("#approve-form #confirm");
        if (confirm) { confirm.focus(); handled = true; }
        else {
          const form = document.getElementById("approve-form");
          if (form) { form.requestSubmit(); handled = true; }
        }
      } else if (key === "r") {
        const reason = document.getElementById("reason");
        if (reason) { reason.focus(); handled = true; }
      } else if (key === "m") {
        const modify = document.getElementById("modify");
        if (modify) {
          modify.open = true;
          const editor = document.getElementById("args-editor");
          if (editor) editor.focus();
          handled = true;
        }
      } else if (key === "l") {
        const form = document.getElementById("ok-form");
        if (form) { form.requestSubmit(); handled = true; }
      } else if (key === "f") {
        const note = document.getElementById("note");
        if (note) { note.focus(); handled = true; }
      } else if (key === "j" || key === "n") {
        handled = click('a[rel="next"]');
      } else if (key === "k" || key === "p") {
        handled = click('a[rel="prev"]');
      }
    }
    if (handled) event.preventDefault();
  });

  // ---- live updates -----------------------------------------------------------------------
  const live = document.getElementById("live");
  function connect(onChange) {
    if (!window.EventSource) return;
    const source = new EventSource("/events");
    source.addEventListener("ready", () => {
      if (live) { live.textContent = "Updates live"; live.classList.remove("off"); }
    });
    source.addEventListener("change", (event) => {
      let data = {};
      try { data = JSON.parse(event.data); } catch { /* a malformed event: reload all */ }
      onChange(data);
    });
    source.addEventListener("error", () => {
      if (live) { live.textContent = "Reconnecting…"; live.classList.add("off"); }
    });
  }

  if (page === "queue") {
    let timer = null;
    let busy = false;
    async function refresh() {
      if (busy) { timer = setTimeout(refresh, 300); return; }
      busy = true;
      try {
        const response = await fetch(location.href, { headers: { "Accept": "text/html" }, credentials: "same-origin" });
        if (response.redirected || !response.ok) { return; }
        const html = await response.text();
        const next = new DOMParser().parseFromString(html, "text/html").getElementById("queue-live");
        const current = document.getElementById("queue-live");
        if (!next || !current) return;
        const before = new Set(rows().map((r) => r.dataset.id));
        const hadFocus = document.activeElement && current.contains(document.activeElement);
        const scroll = window.scrollY;
        current.replaceChildren(...Array.from(next.childNodes).map((n) => document.adoptNode(n)));
        for (const row of rows()) {
          if (!before.has(row.dataset.id)) row.classList.add("fresh");
          if (row.dataset.id === selectedId) row.classList.add("selected");
        }
        tick();
        window.scrollTo(0, scroll);
        if (hadFocus && selectedId) {
          const row = rows().find((r) => r.dataset.id === selectedId);
          if (row) row.querySelector("a").focus({ preventScroll: true });
        }
      } catch {
        // The next change tries again.
      } finally {
        busy = false;
      }
    }
    // Many changes at once (a burst of submissions) cost one refresh.
    connect(() => { clearTimeout(timer); timer = setTimeout(refresh, 250); });
  }

  if (page === "action") {
    const single = document.querySelector(".single");
    const changed = document.getElementById("changed");
    if (single && changed) {
      const id = single.dataset.actionId;
      const version = Number(single.dataset.version);
      connect((data) => {
        if (data.id === id && Number(data.version) > version) changed.hidden = false;
      });
    }
  }

  // ---- the argument editor ------------------------------------------------------------------
  const editor = document.getElementById("args-editor");
  if (editor) {
    const status = document.getElementById("args-status");
    const list = document.getElementById("args-diff");
    let original = {};
    try { original = JSON.parse(editor.dataset.original || "{}"); } catch { original = {}; }
    const flat = (value, prefix, out) => {
      if (value && typeof value === "object" && !Array.isArray(value)) {
        for (const key of Object.keys(value)) flat(value[key], prefix ? prefix + "." + key : key, out);
      } else {
        out.set(prefix, JSON.stringify(value));
      }
      return out;
    };
    const check = () => {
      let parsed;
      try {
        parsed = JSON.parse(editor.value);
      } catch (error) {
        editor.classList.add("invalid");
        editor.setAttribute("aria-invalid", "true");
        status.textContent = "Not valid JSON yet: " + error.message;
        list.hidden = true;
        return;
      }
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
        editor.classList.add("invalid");
        editor.setAttribute("aria-invalid", "true");
        status.textContent = "The arguments must be a JSON object: { \"key\": value }.";
        list.hidden = true;
        return;
      }
      editor.classList.remove("invalid");
      editor.removeAttribute("aria-invalid");
      const before = flat(original, "", new Map());
      const after = flat(parsed, "", new Map());
      const items = [];
      for (const [path, value] of after) {
        if (!before.has(path)) items.push(["new", path + ": added " + value]);
        else if (before.get(path) !== value) items.push(["new", path + ": " + before.get(path) + " → " + value]);
      }
      for (const [path, value] of before) {
        if (!after.has(path)) items.push(["gone", path + ": removed (was " + value + ")"]);
      }
      list.replaceChildren(...items.map(([cls, text]) => {
        const li = document.createElement("li");
        li.className = cls;
        li.textContent = text;
        return li;
      }));
      list.hidden = items.length === 0;
      status.textContent = items.length === 0 ? "Valid JSON, unchanged." :
        "Valid JSON, " + items.length + " change" + (items.length === 1 ? "" : "s") + ". Review them on the next step.";
    };
    editor.addEventListener("input", check);
  }
})();
