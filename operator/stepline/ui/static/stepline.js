// Stepline's web view: a run page follows its run. One request at a time asks the operator for
// a version other than the one shown; the operator answers when its run watch sees one (or
// after 25 s with nothing new), and the page replaces #run-live with what it sends. Nothing
// else on any page needs script.
"use strict";
(function () {
  const region = document.getElementById("run-live");
  const live = document.getElementById("live");
  if (!region || !live) {
    return;
  }
  const url = region.dataset.updates;
  let version = region.dataset.version || "";
  let failures = 0;

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  function say(problem) {
    let alert = document.getElementById("problem");
    if (!alert) {
      alert = document.createElement("p");
      alert.id = "problem";
      alert.setAttribute("role", "alert");
      document.getElementById("main").prepend(alert);
    }
    alert.textContent = problem;
  }

  function replace(html) {
    const focused = document.activeElement;
    const again = focused && region.contains(focused) ? focused.getAttribute("value") : null;
    region.innerHTML = html; // built and escaped by the operator (stepline/ui/html.py)
    if (again) {
      const button = region.querySelector('button[value="' + CSS.escape(again) + '"]');
      if (button) {
        button.focus();
      }
    }
  }

  async function reason(answer) {
    try {
      const body = await answer.json();
      return body.error.message;
    } catch (error) {
      return "the operator answered " + answer.status + ".";
    }
  }

  async function follow() {
    for (;;) {
      let answer;
      try {
        answer = await fetch(url + "?version=" + encodeURIComponent(version), {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
        });
      } catch (error) {
        answer = null;
      }
      if (answer && answer.status === 401) {
        live.textContent = "signed out";
        say("Sign in again to keep following this run.");
        return;
      }
      if (answer && answer.status >= 400 && answer.status < 500 && answer.status !== 408 &&
          answer.status !== 429) {
        // Refused (the permission was taken away, say): asking again would be refused again.
        live.textContent = "stopped";
        say("Updates stopped: " + (await reason(answer)));
        return;
      }
      if (!answer || !answer.ok) {
        failures += 1;
        live.textContent = "reconnecting";
        await sleep(Math.min(30000, 500 * 2 ** failures));
        continue;
      }
      failures = 0;
      const update = await answer.json();
      if (update.unchanged) {
        live.textContent = "live";
        continue;
      }
      version = update.version;
      if (update.live === "deleted") {
        live.textContent = "deleted";
        region.classList.add("deleted");
        say("This run was deleted: what is shown is its last state.");
        return;
      }
      replace(update.html);
      live.textContent = update.live;
      if (update.live === "finished") {
        return;
      }
    }
  }

  follow();
})();
