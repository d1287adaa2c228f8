// Sett console: live updates over server-sent events and the answer forms. Only
// server-rendered HTML is inserted; anything else is set as textContent.
(function () {
  "use strict";
  var csrf = (document.querySelector('meta[name="sett-csrf"]') || {}).content || "";
  var live = window.settLive = { events: 0, last: {}, refreshes: 0, connected: 0 };

  function setState(on) {
    var el = document.getElementById("live-state");
    if (el) { el.className = on ? "live-on" : "live-off"; }
  }

  // Re-render <main> from the server, keeping what the operator is typing.
  var pending = null;
  function refresh() {
    if (pending) { return; }
    pending = setTimeout(function () {
      pending = null;
      fetch(location.href, { credentials: "same-origin" }).then(function (r) {
        if (!r.ok) { return null; }
        return r.text();
      }).then(function (text) {
        if (text === null) { return; }
        var doc = new DOMParser().parseFromString(text, "text/html");
        var next = doc.getElementById("main");
        var main = document.getElementById("main");
        if (!next || !main) { return; }
        var typed = {};
        var focused = document.activeElement && document.activeElement.closest && document.activeElement.closest("form.answer");
        main.querySelectorAll("form.answer").forEach(function (f) {
          typed[f.dataset.questionId] = controls(f).map(function (c) {
            return c.type === "checkbox" || c.type === "radio" ? c.checked : c.value;
          });
        });
        // Context chains the operator opened stay open, with what was loaded.
        var chains = {};
        main.querySelectorAll("details.chain[open]").forEach(function (d) { chains[d.dataset.context] = d.querySelector("ol"); });
        var done = {};
        main.querySelectorAll("[data-answered-now]").forEach(function (el) { done[el.dataset.questionId] = el; });
        // The action panel's reason and the last action's result outlive the refresh.
        var reason = main.querySelector("section.actions input[name=reason]");
        var reasonText = reason ? reason.value : "";
        var lastResult = main.querySelector("section.actions output.result");
        // So do the fork forms: which is open, what is typed in it, and its last result.
        var forks = {};
        main.querySelectorAll("form.fork").forEach(function (f) {
          var d = f.closest("details");
          forks[f.dataset.artifact] = {
            open: d ? d.open : false, text: f.querySelector("textarea").value,
            reason: f.querySelector("input[name=reason]").value,
            loaded: f.dataset.loaded, edited: f.dataset.edited,
            result: f.querySelector("output.result")
          };
        });
        main.replaceChildren.apply(main, Array.prototype.map.call(next.childNodes, function (n) { return document.importNode(n, true); }));
        main.querySelectorAll("form.fork").forEach(function (f) {
          var saved = forks[f.dataset.artifact];
          if (!saved) { return; }
          var d = f.closest("details");
          if (d) { d.open = saved.open; }
          f.querySelector("textarea").value = saved.text;
          f.querySelector("input[name=reason]").value = saved.reason;
          if (saved.loaded) { f.dataset.loaded = saved.loaded; }
          if (saved.edited) { f.dataset.edited = saved.edited; }
          if (saved.result && saved.result.textContent) { f.querySelector("output.result").replaceWith(saved.result); }
        });
        var again = main.querySelector("section.actions input[name=reason]");
        if (again) { again.value = reasonText; }
        var slot = main.querySelector("section.actions output.result");
        if (slot && lastResult && lastResult.textContent) { slot.replaceWith(lastResult); }
        main.querySelectorAll("form.answer").forEach(function (f) {
          var id = f.dataset.questionId;
          var saved = typed[id], list = controls(f);
          if (saved && saved.length === list.length) {
            list.forEach(function (c, n) {
              if (c.type === "checkbox" || c.type === "radio") { c.checked = saved[n]; } else { c.value = saved[n]; }
            });
          }
          if (focused && focused.dataset.questionId === id && list[0]) { list[0].focus(); }
        });
        main.querySelectorAll("details.chain").forEach(function (d) {
          var ol = chains[d.dataset.context];
          if (!ol) { return; }
          d.querySelector("ol").replaceWith(ol);
          d.dataset.loaded = "1";
          d.open = true;
        });
        document.title = doc.title;
        live.refreshes++;
        wire();
      }).catch(function () {});
    }, 120);
  }

  function follow() {
    var main = document.getElementById("main");
    if (!main || !window.EventSource) { return; }
    (main.dataset.live || "").split(" ").filter(Boolean).forEach(function (pair) {
      var i = pair.indexOf("=");
      var name = pair.slice(0, i), after = pair.slice(i + 1);
      var es = new EventSource("/api/v1/instances/" + encodeURIComponent(name) + "/events?after=" + encodeURIComponent(after));
      es.onopen = function () { live.connected++; setState(true); };
      es.onerror = function () { setState(false); };
      es.onmessage = function (m) {
        live.events++;
        live.last[name] = m.lastEventId;
        live.lastReceivedAt = Date.now();
        try { live.lastEvent = JSON.parse(m.data); } catch (e) { live.lastEvent = null; }
        refresh();
      };
    });
  }

  // A question's context chain, fetched the first time it is opened. Agent text is set as
  // textContent; links are built from ids.
  function link(instance, id, text) {
    var a = document.createElement("a");
    a.href = "/instances/" + encodeURIComponent(instance) + "/artifacts/" + encodeURIComponent(id);
    a.textContent = text;
    return a;
  }

  function loadChain(d) {
    if (d.dataset.loaded) { return; }
    d.dataset.loaded = "1";
    var instance = (d.closest("[data-instance]") || { dataset: {} }).dataset.instance || "";
    var ol = d.querySelector("ol");
    fetch(d.dataset.context, { credentials: "same-origin" }).then(function (r) {
      return r.json().then(function (body) { return { ok: r.ok, body: body }; });
    }).then(function (res) {
      ol.replaceChildren();
      if (!res.ok) {
        delete d.dataset.loaded;
        var li = document.createElement("li");
        li.className = "bad";
        li.textContent = res.body.error || "cannot load the context chain";
        ol.appendChild(li);
        return;
      }
      (res.body.context || []).forEach(function (l) {
        var li = document.createElement("li");
        li.appendChild(link(instance, l.id, l.short_id));
        var st = document.createElement("span");
        st.className = "st-" + l.structural_type;
        st.textContent = l.structural_type;
        li.append(" ", st, " " + l.type + " by " + l.produced_by + ": " + l.excerpt);
        ol.appendChild(li);
      });
    }).catch(function () { delete d.dataset.loaded; });
  }

  // `toggle` does not bubble: listen in the capture phase, so refreshed pages need no wiring.
  document.addEventListener("toggle", function (ev) {
    var d = ev.target;
    if (d.matches && d.matches("details.chain") && d.open) { loadChain(d); }
  }, true);

  // A form's inputs, in document order (a free-text form has one textarea).
  function controls(form) {
    return Array.prototype.slice.call(form.querySelectorAll("textarea, input, select"));
  }

  // What HTML validation cannot say about a structured answer: a text field's pattern (a JSON
  // Schema pattern matches anywhere in the value, unlike HTML's anchored one) and how many
  // options a checkbox group may have. Returns false (and shows why) when something is wrong.
  function checkExtra(form) {
    var ok = true;
    form.querySelectorAll("input[data-pattern]").forEach(function (input) {
      var bad = "";
      try {
        if (input.value !== "" && !new RegExp(input.dataset.pattern, "u").test(input.value)) {
          bad = "must match " + input.dataset.pattern;
        }
      } catch (e) { bad = ""; } // a pattern JavaScript cannot compile is left to the server
      input.setCustomValidity(bad);
      if (bad) { ok = false; }
    });
    form.querySelectorAll("fieldset[data-min-items], fieldset[data-max-items]").forEach(function (set) {
      var boxes = set.querySelectorAll("input[type=checkbox]");
      var n = set.querySelectorAll("input[type=checkbox]:checked").length;
      var min = set.dataset.minItems ? Number(set.dataset.minItems) : 0;
      var max = set.dataset.maxItems ? Number(set.dataset.maxItems) : Infinity;
      var bad = n < min ? "pick at least " + min : (n > max ? "pick at most " + max : "");
      if (boxes[0]) { boxes[0].setCustomValidity(bad); }
      if (bad) { ok = false; }
    });
    if (!ok) { form.reportValidity(); }
    return ok;
  }

  // The server's per-field problems, next to their fields.
  function showProblems(form, problems) {
    form.querySelectorAll("output.problem").forEach(function (o) { o.textContent = ""; });
    (problems || []).forEach(function (p) {
      var field = form.querySelector('[data-field="' + (window.CSS && CSS.escape ? CSS.escape(p.field) : p.field) + '"]');
      var out = field && field.querySelector("output.problem");
      if (out) { out.textContent = (out.textContent ? out.textContent + "; " : "") + p.problem; }
    });
  }

  function answered(form, text, cls) {
    var out = form.querySelector("output.result");
    out.className = "result " + cls;
    out.textContent = text;
  }

  // A workflow action (cancel, pause, resume, retry) or a fork: POSTed with the reason; the
  // answer (`said(body)` when given) or the refusal is shown as text, and the page follows the
  // resulting events. A fork's button stays usable (forking twice makes two branches).
  function post(url, body, button, out, said) {
    button.disabled = true;
    fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "content-type": "application/json", "x-sett-csrf": csrf },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().then(function (body) { return { status: r.status, body: body }; });
    }).then(function (res) {
      out.className = "result " + (res.status === 200 ? "ok" : "bad");
      out.dataset.status = String(res.status);
      out.textContent = res.status !== 200
        ? (res.body.error || ("the console answered " + res.status))
        : said ? said(res.body) : (res.body.message || ("Done as " + (res.body.operator || "you") + "."));
      if (res.status !== 200 || said) { button.disabled = false; }
    }).catch(function (e) {
      button.disabled = false;
      out.className = "result bad";
      out.textContent = "the console did not answer: " + e;
    });
  }

  function wireActions() {
    document.querySelectorAll("section.actions:not([data-wired])").forEach(function (panel) {
      panel.dataset.wired = "1";
      panel.querySelectorAll("button[data-action]").forEach(function (button) {
        button.addEventListener("click", function () {
          var reason = panel.querySelector("input[name=reason]").value.trim();
          var url = "/api/v1/instances/" + encodeURIComponent(panel.dataset.instance) + "/workflows/" +
            encodeURIComponent(panel.dataset.workflow) + "/" + button.dataset.action;
          post(url, reason ? { reason: reason } : {}, button, panel.querySelector("output.result"));
        });
      });
    });
  }

  // "Fork from here": opening the form fills in the artifact's current payload (set as a
  // value, never as markup) unless something was typed already; submitting posts the new
  // payload or the different answer with the reason to POST …/artifacts/{id}/fork.
  function wireForks() {
    document.querySelectorAll("form.fork:not([data-wired])").forEach(function (form) {
      form.dataset.wired = "1";
      var text = form.querySelector("textarea");
      var base = "/api/v1/instances/" + encodeURIComponent(form.dataset.instance) + "/artifacts/" +
        encodeURIComponent(form.dataset.artifact);
      text.addEventListener("input", function () { form.dataset.edited = "1"; });
      var details = form.closest("details");
      if (details && form.dataset.input === "payload") {
        details.addEventListener("toggle", function () {
          if (!details.open || form.dataset.loaded) { return; }
          fetch(base, { credentials: "same-origin" }).then(function (r) {
            return r.ok ? r.json() : null;
          }).then(function (v) {
            if (!v || !v.artifact) { return; }
            if (!form.dataset.edited && text.value === "") { text.value = v.artifact.payload; }
            form.dataset.loaded = "1";
          }).catch(function () {});
        });
      }
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var body = {};
        var reason = form.querySelector("input[name=reason]").value.trim();
        if (reason) { body.reason = reason; }
        if (form.dataset.input === "answer") { body.answer = text.value; } else if (text.value !== "") { body.payload = text.value; }
        post(base + "/fork", body, form.querySelector("button"), form.querySelector("output.result"), function (f) {
          return "Forked as " + f.operator + ": the branch starts at " + f.artifact_id + " (v" + f.version + ")" +
            (f.claim_id ? "; the asking agent resumes with this answer." : "; everything after it runs again.");
        });
      });
    });
  }

  function wire() {
    wireActions();
    wireForks();
    document.querySelectorAll("form.answer:not([data-wired])").forEach(function (form) {
      form.dataset.wired = "1";
      form.addEventListener("input", function (ev) {
        if (ev.target.setCustomValidity) { ev.target.setCustomValidity(""); }
        form.querySelectorAll("fieldset input[type=checkbox]").forEach(function (c) { c.setCustomValidity(""); });
      });
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var structured = form.dataset.structured === "1";
        if (structured && !checkExtra(form)) { return; }
        var body = structured
          ? { fields: Array.from(new FormData(form, ev.submitter).entries()).map(function (e) { return [e[0], String(e[1])]; }) }
          : { answer: form.querySelector("textarea").value };
        var buttons = form.querySelectorAll("button");
        buttons.forEach(function (b) { b.disabled = true; });
        var decision = form.dataset.approval === "1" && ev.submitter ? ev.submitter.value : null;
        var url = "/api/v1/instances/" + encodeURIComponent(form.dataset.instance) + "/questions/" +
          encodeURIComponent(form.dataset.questionId) + "/answer";
        fetch(url, {
          method: "POST", credentials: "same-origin",
          headers: { "content-type": "application/json", "x-sett-csrf": csrf },
          body: JSON.stringify(body)
        }).then(function (r) {
          return r.json().then(function (body) { return { status: r.status, body: body }; });
        }).then(function (res) {
          var card = form.closest("[data-question-id]");
          if (res.status === 200) {
            var p = document.createElement("p");
            p.className = "answered-now";
            p.dataset.answeredNow = "1";
            p.textContent = decision === "approve"
              ? "Approved as " + res.body.answered_by + " (answer " + res.body.answer_id + "); the agent is granted its claim."
              : decision === "reject"
                ? "Rejected as " + res.body.answered_by + " (answer " + res.body.answer_id + "); the claim ends with a Failure."
                : "Answered as " + res.body.answered_by + " (answer " + res.body.answer_id + "); the agent resumes.";
            if (card) { card.dataset.state = "answered"; }
            form.replaceWith(p);
          } else {
            buttons.forEach(function (b) { b.disabled = false; });
            showProblems(form, res.body.problems);
            answered(form, res.body.error || ("the console answered " + res.status), "bad");
            if (res.status === 409 && card) { card.dataset.state = "answered"; }
          }
        }).catch(function (e) {
          buttons.forEach(function (b) { b.disabled = false; });
          answered(form, "the console did not answer: " + e, "bad");
        });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { wire(); follow(); });
})();
