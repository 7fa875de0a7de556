// The mock's tester console: turns the page's forms and buttons into /_mock control-plane calls, shows the control
// plane's answer (its error message on a bad input, never a guess of ours), and refreshes the live parts every 2 s.
// Served by the mock itself; it loads nothing from anywhere else. Every text it shows goes in through textContent.
"use strict";

(() => {
  const REFRESH_MS = 2000;
  const openDetails = new Set();
  let refreshing = false;

  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

  // ------------------------------------------------------------------ talking to the control plane

  function describe(data, status) {
    const error = data && typeof data.error === "object" && data.error;
    if (!error) return `The control plane answered ${status}.`;
    let text = `${error.code}: ${error.message}`;
    const details = error.details || {};
    if (Array.isArray(details.problems) && details.problems.length) {
      text += " " + details.problems.map((p) => `${p.field}: ${p.message}.`).join(" ");
    } else if (Array.isArray(details.fields) && details.fields.length) {
      text += ` Fields: ${details.fields.join(", ")}.`;
    } else if (Array.isArray(details.parameters) && details.parameters.length) {
      text += ` Parameters: ${details.parameters.join(", ")}.`;
    }
    return text;
  }

  async function call(method, path, body) {
    const init = { method, headers: { Accept: "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (_) {
      return { ok: false, message: "The mock did not answer: is it still running?", fields: [] };
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    if (response.ok) return { ok: true, data };
    const details = (data && data.error && data.error.details) || {};
    return { ok: false, message: describe(data, response.status), fields: details.fields || [] };
  }

  // ------------------------------------------------------------------ reading forms

  // A number typed as a number is sent as one; anything else is sent as typed, for the control plane to judge.
  function value(text) {
    const trimmed = text.trim();
    if (/^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(trimmed)) return Number(trimmed);
    return trimmed;
  }

  function field(form, name) {
    return form.elements.namedItem(name).value.trim();
  }

  function putNumber(body, form, name) {
    const text = field(form, name);
    if (text !== "") body[name] = value(text);
  }

  const builders = {
    seed(form) {
      const ids = field(form, "personIds").split(/[\s,]+/).filter(Boolean);
      if (!ids.length) return { local: "Enter at least one person id." };
      const state = field(form, "state");
      const successor = field(form, "successorPersonId");
      const people = ids.map((personId) => {
        const person = { personId, state };
        if (successor) person.successorPersonId = successor;
        return person;
      });
      const done = `Seeded ${ids.length} ${ids.length === 1 ? "person" : "people"} as ${state}.`;
      return { method: "POST", path: "/_mock/people", body: { people }, done };
    },
    involvement(form) {
      const body = { personId: field(form, "personId"), status: field(form, "status") };
      const team = field(form, "serviceTeam");
      const type = field(form, "involvementType");
      if (team) body.serviceTeam = team;
      if (type) body.involvementType = type;
      return { method: "POST", path: "/_mock/involvements", body, done: "Involvement added by hand." };
    },
    rule(form) {
      const body = { method: field(form, "method") };
      const path = field(form, "path");
      const code = field(form, "code");
      if (path) body.path = path;
      if (code) body.code = code;
      for (const name of ["status", "retryAfter", "probability", "times", "latencyMs"]) putNumber(body, form, name);
      body.afterCommit = form.elements.namedItem("afterCommit").checked;
      body.dropConnection = form.elements.namedItem("dropConnection").checked;
      return { method: "POST", path: "/_mock/faults/rules", body, done: "Fault rule added." };
    },
    settings(form) {
      // Only what changed: sending the seed again would restart the random sequence.
      const body = {};
      const changed = (name) => {
        const input = form.elements.namedItem(name);
        return input.value.trim() !== input.dataset.initial;
      };
      for (const name of ["seed", "tokenTtlSeconds", "listingDelaySeconds"]) {
        if (changed(name)) {
          const text = field(form, name);
          body[name] = text === "" ? null : value(text);
        }
      }
      if (changed("rateLimit.perSecond") || changed("rateLimit.burst")) {
        const perSecond = field(form, "rateLimit.perSecond");
        const burst = field(form, "rateLimit.burst");
        if (perSecond === "" && burst === "") {
          body.rateLimit = null;
        } else {
          body.rateLimit = {};
          if (perSecond !== "") body.rateLimit.perSecond = value(perSecond);
          if (burst !== "") body.rateLimit.burst = value(burst);
        }
      }
      if (!Object.keys(body).length) return { local: "Nothing changed." };
      return { method: "PATCH", path: "/_mock/faults", body, done: "Fault settings applied." };
    },
  };

  // ------------------------------------------------------------------ showing answers

  let noticeTimer = null;

  function notice(text, ok) {
    const box = $("#notice");
    box.textContent = text;
    box.className = ok ? "ok" : "error";
    box.setAttribute("role", ok ? "status" : "alert");
    box.hidden = false;
    clearTimeout(noticeTimer);
    if (ok) noticeTimer = setTimeout(() => (box.hidden = true), 5000);
  }

  function formError(form, text, fields) {
    const box = $(".form-error", form);
    for (const input of $$("input, select", form)) input.removeAttribute("aria-invalid");
    if (!text) {
      box.hidden = true;
      box.textContent = "";
      return;
    }
    box.textContent = text;
    box.hidden = false;
    for (const path of fields || []) {
      const last = String(path).split(".").pop();
      for (const input of $$("input, select", form)) {
        const names = [input.name, ...(input.dataset.fields || "").split(" ")];
        if (names.includes(path) || names.includes(last)) input.setAttribute("aria-invalid", "true");
      }
    }
  }

  // Send one request; on success forget the edits in `scope` (the form, or the button's row) and refresh at once.
  async function run(request, form, scope) {
    const answer = await call(request.method, request.path, request.body);
    if (!answer.ok) {
      if (form) formError(form, answer.message, answer.fields);
      else notice(answer.message, false);
      return false;
    }
    if (form) formError(form, "");
    if (scope) {
      for (const input of $$("input, select", scope)) delete input.dataset.dirty;
    }
    notice(request.done, true);
    await refresh();
    return true;
  }

  // ------------------------------------------------------------------ events

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (form.id === "journal-filter") {
      event.preventDefault();
      const params = new URLSearchParams();
      for (const [name, text] of new FormData(form)) {
        if (text !== "" && !(name === "limit" && text === "50")) params.append(name, text);
      }
      const query = params.toString();
      location.assign(`/_mock/${query ? "?" + query : ""}#journal`);
      return;
    }
    const build = builders[form.dataset.action];
    if (!build) return;
    event.preventDefault();
    const request = build(form);
    if (request.local) {
      formError(form, request.local);
      return;
    }
    const ok = await run(request, form, form);
    if (ok && form.dataset.action !== "settings") form.reset();
  });

  const buttons = {
    personState(button) {
      const person = { personId: button.dataset.person, state: button.dataset.personState };
      return { method: "POST", path: "/_mock/people", body: { people: [person] }, done: `Now ${person.state}.` };
    },
    personMerge(button) {
      const row = button.closest("tr");
      const successor = $("input[name=successor]", row).value.trim();
      const person = { personId: button.dataset.personMerge, state: "merged" };
      if (successor) person.successorPersonId = successor;
      return { method: "POST", path: "/_mock/people", body: { people: [person] }, done: "Merged." };
    },
    removeInvolvement(button) {
      const id = encodeURIComponent(button.dataset.removeInvolvement);
      return { method: "DELETE", path: `/_mock/involvements/${id}`, done: "Removed by hand." };
    },
    removeRule(button) {
      const id = encodeURIComponent(button.dataset.removeRule);
      return { method: "DELETE", path: `/_mock/faults/rules/${id}`, done: "Fault rule deleted." };
    },
    clearRateLimit() {
      return { method: "PATCH", path: "/_mock/faults", body: { rateLimit: null }, done: "Rate limit removed." };
    },
    clearFaults() {
      return { method: "DELETE", path: "/_mock/faults", done: "Every fault cleared." };
    },
    reset() {
      if (!window.confirm("Forget every person, involvement, fault and journal record?")) return null;
      return { method: "POST", path: "/_mock/reset", done: "Everything reset." };
    },
  };

  document.addEventListener("click", async (event) => {
    const toggle = event.target.closest("button[data-toggle]");
    if (toggle) {
      const seq = toggle.dataset.toggle;
      const open = toggle.getAttribute("aria-expanded") !== "true";
      if (open) openDetails.add(seq);
      else openDetails.delete(seq);
      showDetail(seq, open);
      return;
    }
    const button = event.target.closest("button[type=button]");
    if (!button) return;
    const action = Object.keys(buttons).find((name) => name in button.dataset);
    if (!action) return;
    const request = buttons[action](button);
    if (request) await run(request, null, button.closest("tr"));
  });

  // Typing marks a live part as being edited: the refresh leaves it alone until it is submitted.
  document.addEventListener("input", (event) => {
    const input = event.target;
    if (input.matches && input.matches("input, select")) input.dataset.dirty = "1";
  });

  // ------------------------------------------------------------------ refreshing

  function showDetail(seq, open) {
    const detail = $(`tr[data-detail="${CSS.escape(seq)}"]`);
    const toggle = $(`button[data-toggle="${CSS.escape(seq)}"]`);
    if (!detail || !toggle) return;
    detail.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    toggle.textContent = open ? "▾" : "▸";
  }

  function busy(part) {
    const active = document.activeElement;
    if (active && part.contains(active) && active.matches("input, select")) return true;
    // An edited field that still differs from what the server rendered (empty, for most) holds the part back.
    const edited = (input) => input.dataset.dirty && input.value.trim() !== (input.dataset.initial ?? "");
    return $$("input", part).some(edited);
  }

  async function refresh() {
    if (refreshing) return;
    refreshing = true;
    const stamp = $("#refreshed");
    try {
      const response = await fetch(location.href, { headers: { Accept: "text/html" }, cache: "no-store" });
      if (!(response.headers.get("content-type") || "").startsWith("text/html")) throw new Error("not the console");
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const part of $$("[data-live]")) {
        const replacement = fresh.getElementById(part.id);
        if (replacement && !busy(part)) part.replaceWith(document.importNode(replacement, true));
      }
      for (const seq of openDetails) showDetail(seq, true);
      stamp.textContent = `updated ${new Date().toLocaleTimeString()}`;
      stamp.classList.remove("error");
    } catch (_) {
      stamp.textContent = "the mock is not answering";
      stamp.classList.add("error");
    } finally {
      refreshing = false;
    }
  }

  setInterval(() => {
    const live = $("#live");
    if (live && live.checked && !document.hidden) refresh();
  }, REFRESH_MS);
  document.documentElement.classList.add("js");
})();
