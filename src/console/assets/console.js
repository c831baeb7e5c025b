// Pacer console: live status from server-sent events, actions with the token, the
// command log. No framework; the server renders every fragment.
"use strict";

(function () {
  const readOnly = document.body.dataset.readOnly === "true";
  const connection = document.getElementById("connection");
  const status = document.getElementById("status");
  const tokenKey = "pacer-console-token";
  const logKey = "pacer-console-log";
  let dialogResource = null;

  function setConnection(text, state) {
    if (!connection) return;
    connection.textContent = text;
    connection.dataset.state = state;
  }

  // Live status: the server sends the whole fragment when it changes (coalesced);
  // EventSource reconnects by itself after a break (and asks from the frame it has,
  // by Last-Event-ID). "live" means the page shows the latest frame: the stream's
  // first event says so (`current`) or brings it (`status`).
  if (status && window.EventSource) {
    const source = new EventSource("/status/stream?since=" + encodeURIComponent(status.dataset.version || ""));
    source.addEventListener("error", () => setConnection("reconnecting…", "down"));
    source.addEventListener("current", () => setConnection("live", "live"));
    // Keep the keyboard where it was: the same button in what replaced it.
    const keepFocus = (change) => {
      const focused = document.activeElement;
      const again = focused && status.contains(focused) && focused.matches("button")
        ? `button[data-action="${focused.dataset.action || ""}"][data-node="${focused.dataset.node || ""}"], button[data-open-actions="${focused.dataset.openActions || ""}"]`
        : null;
      change();
      if (again && !status.contains(focused)) {
        const target = status.querySelector(again);
        if (target) target.focus();
      }
    };
    source.addEventListener("status", (event) => {
      keepFocus(() => { status.innerHTML = event.data; });
      status.dataset.version = event.lastEventId;
      setConnection("live", "live");
      refreshDialogNodes();
    });
    // A patch from the frame the page shows: the head and tail when they changed, the
    // rows that changed, the order when it changed (a 10,000-row table is not redrawn
    // for one node's standby).
    const template = document.createElement("template");
    const parseRow = (html) => { template.innerHTML = html; return template.content.firstElementChild; };
    source.addEventListener("patch", (event) => {
      const patch = JSON.parse(event.data);
      keepFocus(() => {
        const head = document.getElementById("part-head");
        if (patch.head && head) {
          head.innerHTML = patch.head.html;
          head.dataset.revision = patch.head.revision;
          head.dataset.nodes = patch.head.nodes;
        }
        const tail = document.getElementById("part-tail");
        if (patch.tail !== null && patch.tail !== undefined && tail) tail.innerHTML = patch.tail;
        const rows = document.getElementById("resource-rows");
        for (const key of patch.remove) document.getElementById("row-" + key)?.remove();
        for (const [key, html] of patch.set) {
          const row = parseRow(html);
          const existing = document.getElementById("row-" + key);
          if (existing) existing.replaceWith(row); else rows.append(row);
        }
        if (patch.order) {
          const fragment = document.createDocumentFragment();
          for (const key of patch.order) {
            const row = document.getElementById("row-" + key);
            if (row) fragment.append(row);
          }
          rows.append(fragment);
        }
      });
      status.dataset.version = event.lastEventId;
      setConnection("live", "live");
      refreshDialogNodes();
    });
  }

  // The sandbox and the configuration's diff: they write nothing, so a read-only
  // console offers them too. The server answers with a fragment to show.
  async function showFragment(url, body, target) {
    target.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      target.innerHTML = await response.text();
      target.dataset.status = String(response.status);
    } catch (error) {
      target.textContent = String(error);
      target.dataset.status = "error";
    } finally {
      target.removeAttribute("aria-busy");
    }
  }

  const sandboxForm = document.getElementById("sandbox-form");
  const manifestsInput = document.getElementById("manifests");
  const manifestFile = document.getElementById("manifest-file");
  if (manifestFile && manifestsInput) {
    manifestFile.addEventListener("change", async () => {
      const file = manifestFile.files && manifestFile.files[0];
      if (file) manifestsInput.value = await file.text();
    });
  }
  if (sandboxForm) {
    sandboxForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const nodeFail = [...sandboxForm.querySelectorAll("input[name=nodeFail]:checked")].map((input) => input.value);
      const body = { nodeFail, opFail: document.getElementById("op-fail").value, manifests: manifestsInput.value };
      showFragment("/api/simulate", body, document.getElementById("sandbox-result"));
    });
  }

  const changeForm = document.getElementById("change-form");
  if (changeForm) {
    changeForm.addEventListener("submit", (event) => {
      event.preventDefault();
      showFragment("/api/diff", { manifests: document.getElementById("change-manifests").value }, document.getElementById("change-result"));
    });
  }

  if (readOnly) return;

  // Apply pasted manifests (sandbox or configuration page) with the token.
  async function applyManifests(text, target, button) {
    const answer = await post("/api/apply", { manifests: text }, button);
    if (answer && answer.html) target.innerHTML = answer.html;
    else if (answer) target.textContent = answer.message || "";
  }
  const sandboxApply = document.getElementById("apply-manifests");
  if (sandboxApply) sandboxApply.addEventListener("click", () => applyManifests(manifestsInput.value, document.getElementById("sandbox-result"), sandboxApply));
  const changeApply = document.getElementById("apply-button");
  if (changeApply) changeApply.addEventListener("click", () => applyManifests(document.getElementById("change-manifests").value, document.getElementById("change-result"), changeApply));

  const tokenForm = document.getElementById("token-form");
  const tokenInput = document.getElementById("token");
  if (tokenInput) tokenInput.value = sessionStorage.getItem(tokenKey) || "";
  if (tokenForm) {
    tokenForm.addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(tokenKey, tokenInput.value.trim());
      logLine({ command: "(token set for this tab)", message: "", ok: true });
    });
  }

  function token() {
    return (tokenInput && tokenInput.value.trim()) || sessionStorage.getItem(tokenKey) || "";
  }

  // The command log: each action, its pacer command and its outcome, kept for the tab.
  const log = document.getElementById("command-log");
  function logLine(entry, store = true) {
    if (!log) return;
    const item = document.createElement("li");
    item.className = entry.ok ? "ok" : "refused";
    const time = document.createElement("time");
    time.textContent = entry.time || new Date().toLocaleTimeString();
    const code = document.createElement("code");
    code.textContent = entry.command ? "$ " + entry.command : "";
    const message = document.createElement("pre");
    message.textContent = entry.message || "";
    item.append(time, " ", code, message);
    log.prepend(item);
    if (store) {
      const saved = JSON.parse(sessionStorage.getItem(logKey) || "[]");
      saved.push({ ...entry, time: time.textContent });
      sessionStorage.setItem(logKey, JSON.stringify(saved.slice(-100)));
    }
  }
  for (const entry of JSON.parse(sessionStorage.getItem(logKey) || "[]")) logLine(entry, false);

  function act(body, button) {
    return post("/api/action", body, button);
  }

  async function post(url, body, button) {
    if (button) button.disabled = true;
    try {
      const response = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: "Bearer " + token() },
        body: JSON.stringify(body),
      });
      let answer;
      try {
        answer = await response.json();
      } catch (_) {
        answer = { ok: false, message: "HTTP " + response.status };
      }
      logLine({ ok: answer.ok, command: answer.command || body.verb || url, message: answer.message });
      return answer;
    } catch (error) {
      logLine({ ok: false, command: body.verb || url, message: String(error) });
    } finally {
      if (button) button.disabled = false;
    }
  }

  // Node buttons and the resources' "Actions" buttons; the status fragment is
  // replaced on every change, so clicks are handled on the document.
  document.addEventListener("click", (event) => {
    const target = event.target.closest("button");
    if (!target) return;
    if (target.dataset.action && target.dataset.node) {
      act({ verb: target.dataset.action, node: target.dataset.node }, target);
    } else if (target.dataset.openActions) {
      openDialog(target.dataset.openActions);
    } else if (target.dataset.verb && dialogResource) {
      const body = { verb: target.dataset.verb, resource: dialogResource };
      const node = document.getElementById("action-node").value;
      const lifetime = document.getElementById("action-lifetime").value.trim();
      if (["move", "ban", "cleanup", "refresh"].includes(body.verb) && node) body.node = node;
      if (["move", "ban"].includes(body.verb) && lifetime) body.lifetime = lifetime;
      act(body, target);
    }
  });

  const dialog = document.getElementById("resource-dialog");
  function refreshDialogNodes() {
    const select = document.getElementById("action-node");
    const cluster = document.getElementById("part-head");
    if (!select || !cluster) return;
    const chosen = select.value;
    const nodes = (cluster.dataset.nodes || "").split(" ").filter(Boolean);
    select.replaceChildren(new Option("(none)", ""), ...nodes.map((node) => new Option(node, node)));
    select.value = nodes.includes(chosen) ? chosen : "";
  }
  function openDialog(resource) {
    dialogResource = resource;
    document.getElementById("resource-dialog-title").textContent = "Actions for " + resource;
    refreshDialogNodes();
    if (dialog && !dialog.open) dialog.showModal();
  }
})();
