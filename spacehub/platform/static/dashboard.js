// spacehub dashboard: the live parts of a space's page (stage, logs, app), with no framework.
"use strict";

function appendLog(pre, text) {
  const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
  pre.append(document.createTextNode(text));
  if (atBottom) pre.scrollTop = pre.scrollHeight;
}

// A log stream: the server sends the whole log then follows it; it ends with the build.
function followLog(pre) {
  if (pre.stream) pre.stream.close();
  pre.textContent = "";
  const stream = new EventSource(pre.dataset.logUrl);
  stream.onmessage = (event) => {
    if (!event.data.trim()) return; // keep-alive
    try {
      appendLog(pre, JSON.parse(event.data).data);
    } catch (error) {
      appendLog(pre, event.data + "\n");
    }
  };
  stream.onerror = () => stream.close(); // ended: reopened when the stage changes
  pre.stream = stream;
}

function watchStage(badge) {
  // What the page was rendered with.
  let last = {
    stage: badge.textContent.trim(),
    build: badge.dataset.build ? Number(badge.dataset.build) : null,
    commit: badge.dataset.commit || null,
  };
  const frame = document.getElementById("app");
  const error = document.getElementById("stage-error");
  const logs = document.querySelectorAll("pre[data-log-url]");
  logs.forEach(followLog);
  async function poll() {
    try {
      const answer = await fetch(badge.dataset.runtimeUrl, { credentials: "same-origin", cache: "no-store" });
      if (answer.ok) {
        const now = await answer.json();
        if (now.stage !== last.stage) {
          badge.textContent = now.stage;
          badge.className = "badge stage stage-" + now.stage.toLowerCase();
          const waiting = now.stage === "NO_APP_FILE";
          document.getElementById("get-started")?.toggleAttribute("hidden", !waiting);
          document.getElementById("app-section")?.toggleAttribute("hidden", waiting);
        }
        if (now.build !== last.build || (now.stage !== last.stage && now.busy)) {
          logs.forEach(followLog);
        } else if (now.stage !== last.stage && now.stage.startsWith("RUNNING")) {
          logs.forEach((pre) => pre.id === "run-log" && followLog(pre));
        }
        if (frame && now.stage === "RUNNING" && (last.stage !== "RUNNING" || now.commit !== last.commit)) {
          frame.src = frame.dataset.src; // the new release
        }
        if (error) {
          error.textContent = now.error || "";
          error.hidden = !now.error;
        }
        last = now;
      }
    } catch (failure) {
      // the platform restarts or the network is down: try again at the next tick
    }
    setTimeout(poll, document.hidden ? 5000 : 1500);
  }
  setTimeout(poll, 1500);
}

// The admin console's spaces table: CPU % and memory of each running space; "—" for the rest.
function watchUsage(table) {
  async function poll() {
    try {
      const answer = await fetch(table.dataset.usageUrl, { credentials: "same-origin", cache: "no-store" });
      if (answer.ok) {
        const spaces = (await answer.json()).spaces;
        table.querySelectorAll("tr[data-space]").forEach((row) => {
          const figures = spaces[row.dataset.space];
          row.querySelector("[data-cpu]").textContent = figures ? figures.cpu_percent.toFixed(1) + " %" : "—";
          row.querySelector("[data-memory]").textContent = figures ? Math.round(figures.memory_mib) + " MiB" : "—";
        });
      }
    } catch (failure) {
      // the platform restarts or the network is down: try again at the next tick
    }
    setTimeout(poll, document.hidden ? 10000 : 2500);
  }
  poll();
}

document.addEventListener("DOMContentLoaded", () => {
  const badge = document.querySelector("[data-runtime-url]");
  if (badge) watchStage(badge);
  const spaces = document.querySelector("[data-usage-url]");
  if (spaces) watchUsage(spaces);
});
