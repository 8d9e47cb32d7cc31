// The live log of a running job: the page's one script, no build step. It follows the job's
// server-sent events (GET /jobs/{id}/stream, authenticated by the login cookie), appends each
// event's output, and reloads the page once the job has ended, so its status and buttons are new.
"use strict";
(function () {
  const log = document.getElementById("live-log");
  if (!log) return;
  const state = document.getElementById("live-state");
  // EventSource delivers a named event only to a listener of that name: Ansible's event types
  // (ansible-runner's callback), and "end", the stream's last
  const KINDS = [
    "playbook_on_start", "playbook_on_play_start", "playbook_on_task_start",
    "playbook_on_handler_task_start", "playbook_on_cleanup_task_start", "playbook_on_include",
    "playbook_on_import_for_host", "playbook_on_not_import_for_host", "playbook_on_notify",
    "playbook_on_no_hosts_matched", "playbook_on_no_hosts_remaining", "playbook_on_setup",
    "playbook_on_vars_prompt", "playbook_on_stats",
    "runner_on_start", "runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable",
    "runner_on_no_hosts", "runner_on_async_poll", "runner_on_async_ok", "runner_on_async_failed",
    "runner_on_file_diff", "runner_item_on_ok", "runner_item_on_failed", "runner_item_on_skipped",
    "runner_on_item_failed", "runner_retry",
    "verbose", "debug", "warning", "deprecated", "system_warning", "error", "message",
  ];
  const source = new EventSource(log.dataset.stream);

  function append(text, cls) {
    const line = document.createElement("span");
    if (cls) line.className = cls;
    line.textContent = text + "\n";  // text, never markup
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.appendChild(line);
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  function onEvent(message) {
    const event = JSON.parse(message.data);
    if (state && state.textContent !== "running") state.textContent = "running";
    if (event.stdout) append(event.stdout, event.failed ? "failed" : "");
  }

  for (const kind of KINDS) source.addEventListener(kind, onEvent);
  source.addEventListener("end", function (message) {
    source.close();
    const end = JSON.parse(message.data);
    if (state) state.textContent = end.status;
    append("job " + end.status + (end.error ? ": " + end.error : ""), "end");
    log.dataset.ended = end.status;
    window.setTimeout(function () { window.location.reload(); }, 1500);
  });
  source.addEventListener("error", function () {
    if (source.readyState === EventSource.CLOSED && !log.dataset.ended) {
      append("(the live log stopped: reload the page)", "failed");
    }
  });
})();
