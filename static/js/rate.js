/* The rating page: show a leased pair, take the rater's choice from keys or buttons, send it.
 *
 * Judgments go into a queue kept in localStorage before they are sent, and leave it only when the
 * server has acknowledged them; a failed send is retried with the same client_key, so a lost
 * connection (or a closed tab) loses nothing and stores nothing twice. The next pair is fetched
 * ahead of time and its images preloaded, so the switch after a choice is immediate.
 */
(function () {
  "use strict";

  var root = document.getElementById("rater");
  if (!root) return;

  var api = root.dataset.api;                 // /api/v1/projects/<slug>/
  var imagesApi = root.dataset.imagesApi;     // /api/v1/images/
  var csrf = root.dataset.csrf;
  var allowTies = root.dataset.allowTies === "true";
  var allowBothBad = root.dataset.allowBothBad === "true";
  var showPrompt = root.dataset.showPrompt === "true";
  // Several criteria: each key or button answers the highlighted question; the last answer sends them all.
  var criteriaList = document.getElementById("criteria");
  var criteriaKeys = criteriaList
    ? Array.prototype.map.call(criteriaList.querySelectorAll("[data-criterion]"), function (li) { return li.dataset.criterion; })
    : [];
  var ANSWER_LABELS = { a: "left", b: "right", tie: "tie", bad: "both bad" };
  var queueKey = "tagrank.pending." + root.dataset.project + "." + root.dataset.user;
  var sessionKey = "tagrank.session." + root.dataset.project + "." + root.dataset.user;
  var PREFETCH = 1;

  var el = function (id) { return document.getElementById(id); };
  var ui = {
    pair: el("pair"), actions: el("actions"), loading: el("loading"), empty: el("empty"), complete: el("complete"), status: el("status"),
    myCount: el("my-count"), sessionCount: el("session-count"), pending: el("pending"), undo: el("undo-button"),
    zoom: el("zoom"), zoomImg: el("zoom-img"), vocabulary: el("vocabulary"),
    prompt: el("prompt"), promptText: el("prompt-text"),
  };

  var state = {
    answers: {},          // several criteria: the answers given to the pair on screen
    criterion: null,      // the question the next key or button answers
    current: null,        // the pair on screen: {lease, a, b, expires_at}
    ready: [],            // prefetched pairs
    fetching: null,       // the next-pair request in flight
    filling: null,        // the running prefetch loop
    signedOut: false,     // the server no longer accepts this session
    exhausted: false,     // the server said 204 (nothing now) or 410 (campaign complete)
    complete: false,      // the server said 410: the campaign reached its target
    shownAt: 0,
    pending: loadQueue(), // judgments not yet acknowledged
    inFlight: null,       // the judgment being sent right now
    flushing: null,       // promise of the running flush
    retryDelay: 1000,
    retryTimer: null,
    seen: [],             // leases this page was given (a judged one may come back while its ack is on the way)
    history: [],          // this page's judgments, newest last, for undo: {pair, item, comparisonId}
    myCount: parseInt(ui.myCount.textContent, 10) || 0,
    sessionCount: parseInt(sessionStorage.getItem(sessionKey) || "0", 10),
  };

  // --- Talking to the API ----------------------------------------------------------------------

  function request(method, url, body, options) {
    var init = {
      method: method,
      credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRFToken": csrf },
      keepalive: Boolean(options && options.keepalive),
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(url, init).then(function (response) {
      if (response.status === 204) return { status: 204, data: null };
      var retryAfter = parseInt(response.headers.get("Retry-After") || "", 10) || 0;
      return response.json().catch(function () { return {}; }).then(function (data) {
        return { status: response.status, data: data, retryAfter: retryAfter };
      });
    });
  }

  function detail(result) {
    return (result.data && (result.data.detail || JSON.stringify(result.data))) || ("HTTP " + result.status);
  }

  function newKey() {
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);  // also where crypto.randomUUID is not (plain http on a LAN)
    return Array.prototype.map.call(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  function say(message, kind) {
    ui.status.textContent = message || "";
    ui.status.className = "status" + (kind ? " " + kind : "");
  }

  // --- Pairs -----------------------------------------------------------------------------------

  function preload(pair) {
    [pair.a.url, pair.b.url].forEach(function (url) { var img = new Image(); img.src = url; });
  }

  // A crowd worker who is done: to the platform's completion URL, or the completion code on the page.
  function finishCrowdWork(data) {
    if (data.code === "quota_reached") {
      el("complete-title").textContent = "You are done";
      el("complete-text").textContent = data.detail || "";
    }
    if (data.completion_url) { window.location.assign(data.completion_url); return; }
    if (data.completion_code) {
      el("completion").hidden = false;
      el("completion-code").textContent = data.completion_code;
    }
  }

  var STOPPED = { not_qualified: "Thank you for taking part", rater_paused: "Rating is paused for you" };

  function fetchPair() {
    if (state.fetching) return state.fetching;
    state.fetching = request("GET", api + "next-pair/").then(function (result) {
      state.fetching = null;
      if (result.status === 200) { preload(result.data); return result.data; }
      if (result.status === 204) { state.exhausted = true; return null; }
      if (result.status === 410) {  // campaign complete, or a crowd worker's quota reached
        state.exhausted = true; state.complete = true;
        finishCrowdWork(result.data || {});
        return null;
      }
      if (result.status === 403 && result.data && STOPPED[result.data.code]) {  // failed the qualification, paused
        state.exhausted = true; state.complete = true;
        el("complete-title").textContent = STOPPED[result.data.code];
        el("complete-text").textContent = result.data.detail;
        return null;
      }
      if (result.status === 401 || result.status === 403 || result.status === 404) {
        state.signedOut = true;  // no retry can help: say so and stop asking
        say("You are no longer signed in or no longer a member of this project: log in again to go on.", "error");
        return null;
      }
      throw new Error(detail(result));
    }, function (error) { state.fetching = null; throw error; });
    return state.fetching;
  }

  function fill() {
    if (state.filling) return state.filling;
    state.filling = (function loop() {
      if (!state.current && state.ready.length) show(state.ready.shift());
      if (state.signedOut) { if (!state.current) showLoading(); return Promise.resolve(); }
      if (state.exhausted) {
        if (!state.current) showEmpty();
        return Promise.resolve();
      }
      if (state.ready.length >= PREFETCH && state.current) return Promise.resolve();
      return fetchPair().then(function (pair) {
        if (pair && known(pair.lease)) {
          // At the server's cap of live leases it hands back one this page already has (or just judged):
          // wait for the queue to drain instead of showing a pair twice.
          return wait(1000).then(function () { return (state.flushing || Promise.resolve()).then(loop); });
        }
        if (pair) { remember(pair); if (state.current) state.ready.push(pair); else show(pair); }
        return loop();
      });
    })().catch(function () {
      say("Cannot reach the server; retrying…", "warn");
      setTimeout(fill, 3000);
    }).then(function () { state.filling = null; });
    return state.filling;
  }

  function known(lease) { return state.seen.indexOf(lease) >= 0; }

  function remember(pair) {
    if (known(pair.lease)) return;
    state.seen.push(pair.lease);
    if (state.seen.length > 100) state.seen.shift();
  }

  function wait(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  function expired(pair) { return Date.parse(pair.expires_at) - Date.now() < 2000; }

  function advance() {
    state.current = null;
    while (state.ready.length && expired(state.ready[0])) state.ready.shift();
    var next = state.ready.shift();
    if (next) show(next); else showLoading();
    fill();
  }

  function showLoading() {
    root.dataset.lease = "";
    if (ui.prompt) ui.prompt.hidden = true;
    ui.pair.hidden = true; ui.actions.hidden = true; ui.empty.hidden = true; ui.loading.hidden = false;
  }

  function showEmpty() {
    root.dataset.lease = "";
    if (ui.prompt) ui.prompt.hidden = true;
    ui.pair.hidden = true; ui.actions.hidden = true; ui.loading.hidden = true;
    ui.empty.hidden = Boolean(state.complete); ui.complete.hidden = !state.complete;
  }

  function show(pair) {
    state.current = pair;
    ["a", "b"].forEach(function (side) {
      var img = el("img-" + side);
      img.src = pair[side].url;
      img.width = pair[side].width; img.height = pair[side].height;  // reserves the space: no layout jump
      renderTags(side);
    });
    if (showPrompt && ui.prompt) {
      // The two images' prompt; where they differ (a project without groups by prompt), both.
      var text = pair.prompt !== null && pair.prompt !== undefined ? pair.prompt
        : "left: " + (pair.a.prompt || "") + " · right: " + (pair.b.prompt || "");
      ui.promptText.textContent = text;
      ui.prompt.hidden = !text;
    }
    ui.loading.hidden = true; ui.empty.hidden = true; ui.complete.hidden = true; ui.pair.hidden = false;
    ui.actions.hidden = false;
    // What is on screen, for people debugging and for the browser test.
    root.dataset.lease = pair.lease; root.dataset.imageA = pair.a.id; root.dataset.imageB = pair.b.id;
    state.shownAt = performance.now();
    if (criteriaKeys.length) resetAnswers();
  }

  // --- Judgments -------------------------------------------------------------------------------

  function loadQueue() {
    try { return JSON.parse(localStorage.getItem(queueKey) || "[]"); } catch (e) { return []; }
  }

  function saveQueue() {
    try { localStorage.setItem(queueKey, JSON.stringify(state.pending)); } catch (e) { /* private mode: memory only */ }
    ui.pending.hidden = state.pending.length === 0;
    ui.pending.textContent = state.pending.length + " waiting to be saved";
  }

  function setCounts(delta) {
    state.myCount += delta; state.sessionCount += delta;
    ui.myCount.textContent = state.myCount;
    ui.sessionCount.textContent = state.sessionCount;
    sessionStorage.setItem(sessionKey, String(state.sessionCount));
    ui.undo.disabled = state.history.length === 0;
  }

  function resetAnswers() {
    state.answers = {};
    state.criterion = criteriaKeys[0];
    renderAnswers();
  }

  function renderAnswers() {
    if (!criteriaList) return;
    criteriaList.querySelectorAll("[data-criterion]").forEach(function (li) {
      var answer = state.answers[li.dataset.criterion];
      li.classList.toggle("current", li.dataset.criterion === state.criterion);
      li.classList.toggle("answered", Boolean(answer));
      li.querySelector(".criterion-answer").textContent = answer ? ANSWER_LABELS[answer] : "";
    });
    root.dataset.criterion = state.criterion || "";
  }

  function answer(winner) {
    // Record the highlighted question's answer; move to the next unanswered one; true once all are answered.
    state.answers[state.criterion] = winner;
    var next = criteriaKeys.filter(function (key) { return !state.answers[key]; })[0];
    state.criterion = next;
    renderAnswers();
    return !next;
  }

  function judge(winner) {
    var pair = state.current;
    if (!pair || (winner === "tie" && !allowTies) || (winner === "bad" && !allowBothBad)) return;
    if (expired(pair)) {
      say("That pair was open too long and expired; here is a new one.", "warn");
      advance();
      return;
    }
    if (criteriaKeys.length && !answer(winner)) return;
    var item = {
      lease: pair.lease, client_key: newKey(),
      response_ms: Math.max(0, Math.round(performance.now() - state.shownAt)),
    };
    if (criteriaKeys.length) item.answers = Object.assign({}, state.answers); else item.winner = winner;
    state.pending.push(item);
    saveQueue();
    state.history.push({ pair: pair, item: item, comparisonId: null });
    if (state.history.length > 20) state.history.shift();
    setCounts(+1);
    say("");
    advance();
    flush();
  }

  function scheduleRetry(retryAfter) {
    if (state.retryTimer) return;
    say(state.pending.length + " judgment(s) not saved yet: retrying…", "warn");
    // The server's Retry-After (a 503 while its database is down, a 429) when it gives one.
    var delay = retryAfter ? Math.max(retryAfter * 1000, 500) : state.retryDelay;
    state.retryTimer = setTimeout(function () { state.retryTimer = null; flush(); }, delay);
    state.retryDelay = Math.min(state.retryDelay * 2, 30000);
  }

  function flush() {
    if (state.flushing) return state.flushing;
    state.flushing = (function next() {
      var item = state.pending[0];
      if (!item) return Promise.resolve();
      state.inFlight = item;
      return request("POST", api + "comparisons/", item).then(function (result) {
        state.inFlight = null;
        if (result.status === 200 || result.status === 201) {
          state.pending.shift(); saveQueue();
          state.retryDelay = 1000;
          state.history.forEach(function (h) { if (h.item.client_key === item.client_key) h.comparisonId = result.data.id; });
          if (ui.status.classList.contains("warn")) say("All judgments saved.");
          return next();
        }
        if (result.status === 429 || result.status >= 500) { scheduleRetry(result.retryAfter); return; }
        if (result.status === 401 || result.status === 403) {
          // Signed out: keep the judgments (they are in localStorage) and send them after the next log-in.
          say(state.pending.length + " judgment(s) waiting: log in again and they will be saved.", "error");
          return;
        }
        // Refused for good (e.g. the lease expired while offline): drop it and say so.
        state.pending.shift(); saveQueue();
        state.history = state.history.filter(function (h) { return h.item !== item; });
        setCounts(-1);
        say("A judgment was not stored: " + detail(result), "error");
        return next();
      }, function () {
        state.inFlight = null;
        scheduleRetry();
      });
    })().then(function () { state.flushing = null; }, function () { state.flushing = null; });
    return state.flushing;
  }

  function skip() {
    var pair = state.current;
    if (!pair) return;
    advance();
    request("POST", api + "skip/", { lease: pair.lease }).catch(function () { /* the lease expires anyway */ });
  }

  function undo() {
    var last = state.history[state.history.length - 1];
    if (!last) { say("Nothing to undo."); return; }
    var waiting = state.pending.indexOf(last.item);
    if (waiting >= 0 && last.item !== state.inFlight) {
      // Not sent yet: take it out of the queue; its lease is still live.
      state.pending.splice(waiting, 1); saveQueue();
      state.history.pop(); setCounts(-1);
      reshow(last.pair);
      say("Undone.");
      return;
    }
    var sending = state.flushing || Promise.resolve();
    sending.then(function () {
      if (!last.comparisonId) { say("That judgment was not stored, so there is nothing to undo.", "warn"); return; }
      return request("POST", api + "comparisons/undo/", { comparison: last.comparisonId }).then(function (result) {
        if (result.status !== 200) { say(detail(result), "warn"); return; }
        state.history.pop(); setCounts(-1);
        reshow(result.data);
        say("Undone: judge the pair again.");
      });
    }).catch(function () { say("Cannot reach the server to undo; try again.", "warn"); });
  }

  function reshow(pair) {
    if (state.current) state.ready.unshift(state.current);
    show(pair);
  }

  // --- Tags ------------------------------------------------------------------------------------

  function renderTags(side) {
    var list = el("tags-" + side);
    var image = state.current[side];
    list.textContent = "";
    image.tags.forEach(function (name) {
      var li = document.createElement("li");
      var label = document.createElement("span");
      label.textContent = name;
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "remove-tag";
      remove.textContent = "×";
      remove.setAttribute("aria-label", "Remove tag " + name);
      remove.addEventListener("click", function () { removeTag(side, image, name); });
      li.appendChild(label); li.appendChild(remove);
      list.appendChild(li);
    });
  }

  function applyTags(side, image, result) {
    image.tags = result.data.map(function (t) { return t.name; });
    if (state.current && state.current[side] === image) renderTags(side);
  }

  function addTag(side, input) {
    var image = state.current && state.current[side];
    var name = input.value.trim();
    if (!image || !name) return;
    request("POST", imagesApi + image.id + "/tags/", { name: name }).then(function (result) {
      if (result.status === 200 || result.status === 201) {
        applyTags(side, image, result);
        input.value = "";
        say("Tag “" + name + "” added.");
      } else {
        say(detail(result), "error");
      }
    }, function () { say("Cannot reach the server; the tag was not added.", "warn"); });
  }

  function removeTag(side, image, name) {
    request("DELETE", imagesApi + image.id + "/tags/?name=" + encodeURIComponent(name)).then(function (result) {
      if (result.status === 200) { applyTags(side, image, result); say("Tag “" + name + "” removed."); }
      else say(detail(result), "error");
    }, function () { say("Cannot reach the server; the tag was not removed.", "warn"); });
  }

  var suggestTimer = null;
  function suggest(prefix) {
    clearTimeout(suggestTimer);
    suggestTimer = setTimeout(function () {
      request("GET", api + "tags/?page_size=30&q=" + encodeURIComponent(prefix.trim())).then(function (result) {
        if (result.status !== 200) return;
        ui.vocabulary.textContent = "";
        result.data.results.forEach(function (tag) {
          var option = document.createElement("option");
          option.value = tag.name;
          ui.vocabulary.appendChild(option);
        });
      }, function () {});
    }, 120);
  }

  // --- Wiring ----------------------------------------------------------------------------------

  root.addEventListener("click", function (event) {
    var pick = event.target.closest(".criterion-pick");
    if (pick) { state.criterion = pick.parentNode.dataset.criterion; renderAnswers(); return; }
    var chooser = event.target.closest("[data-winner]");
    if (chooser) { judge(chooser.dataset.winner); return; }
    var zoom = event.target.closest("[data-zoom]");
    if (zoom && state.current) {
      var image = state.current[zoom.dataset.zoom];
      ui.zoomImg.src = image.url;
      ui.zoomImg.alt = (zoom.dataset.zoom === "a" ? "Left" : "Right") + " image at full resolution";
      ui.zoom.showModal();
    }
  });
  ui.zoom.addEventListener("click", function (event) { if (event.target === ui.zoom || event.target === ui.zoomImg) ui.zoom.close(); });
  el("skip-button").addEventListener("click", skip);
  // The instructions: before the first pair (a rater with no judgments yet), and behind H or the Help button.
  var help = el("help");
  el("help-button").addEventListener("click", function () { if (!help.open) help.showModal(); });
  ui.undo.addEventListener("click", undo);
  el("check-again").addEventListener("click", function () { state.exhausted = false; showLoading(); fill(); });

  document.querySelectorAll("form.add-tag").forEach(function (form) {
    var input = form.querySelector("input");
    form.addEventListener("submit", function (event) { event.preventDefault(); addTag(form.dataset.side, input); });
    // Enter adds the tag even while the autocomplete list is open (which can swallow the form's submit).
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter") { event.preventDefault(); addTag(form.dataset.side, input); }
      else if (event.key === "Escape") { input.value = ""; input.blur(); }
    });
    input.addEventListener("input", function () { suggest(input.value); });
    input.addEventListener("focus", function () { suggest(input.value); });
  });

  var KEYS = { arrowleft: "a", a: "a", arrowright: "b", l: "b", t: "tie", b: "bad" };
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || ui.zoom.open || help.open) return;
    var target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT")) return;
    var key = event.key.toLowerCase();
    if (KEYS[key]) { event.preventDefault(); judge(KEYS[key]); }
    else if (key === "s") { event.preventDefault(); skip(); }
    else if (key === "u") { event.preventDefault(); undo(); }
    else if (key === "h" || key === "?") { event.preventDefault(); help.showModal(); }
  });

  window.addEventListener("online", flush);
  // Pairs on screen or prefetched go back to the pool when the page goes away (best effort).
  window.addEventListener("pagehide", function () {
    var sent = state.pending.map(function (item) { return item.lease; });
    var leases = [state.current].concat(state.ready).filter(Boolean).map(function (pair) { return pair.lease; })
      .filter(function (lease) { return sent.indexOf(lease) < 0; });
    if (leases.length) request("POST", api + "release/", { leases: leases }, { keepalive: true }).catch(function () {});
  });

  ui.sessionCount.textContent = state.sessionCount;
  if (root.dataset.showInstructions === "true") help.showModal();
  saveQueue();
  flush();   // judgments left from an earlier visit go first
  fill();
})();
