/* The sampler's registration page (采样登记): keyboard-wedge scanners and the keyboard
   alone. Every registration is kept in localStorage with its idempotency key until the
   server has answered it, so a lost connection or a reload loses nothing; the queue is
   sent in order as soon as the server is back. F2 closes the tube, F4 undoes the last
   person, Escape clears the field. */
(function () {
  "use strict";
  var desk = document.getElementById("swab-desk");
  if (!desk) return;
  var roundId = desk.dataset.round;
  var capacity = parseInt(desk.dataset.capacity, 10);
  var csrf = desk.dataset.csrf;
  var t = desk.dataset;
  var STORE = "fc-sampling-" + roundId;
  var input = document.getElementById("swab-input");
  var form = document.getElementById("swab-form");
  var prompt = document.getElementById("swab-prompt");
  var message = document.getElementById("swab-message");
  var reasonBox = document.getElementById("swab-reason-box");
  var reasonInput = document.getElementById("swab-reason");
  var choicesList = document.getElementById("swab-choices");
  var stationSelect = document.getElementById("swab-station");

  function load() {
    try {
      var saved = JSON.parse(localStorage.getItem(STORE) || "{}");
      return {
        tube: saved.tube || null, // {barcode, count, closed}
        queue: saved.queue || [], // operations not yet answered by the server
        problems: saved.problems || [],
        station: saved.station || "1"
      };
    } catch (e) {
      return { tube: null, queue: [], problems: [], station: "1" };
    }
  }
  var state = load();
  var names = []; // only in memory: names are not kept on the laptop
  var labels = {}; // key → the picked line of a room pick (in memory, like names)
  var choices = null; // people of a room being picked
  var pendingReason = null; // a refused registration waiting for its reason
  var sending = false;
  var online = true;

  function save() {
    localStorage.setItem(STORE, JSON.stringify(state));
  }

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID().replace(/-/g, "");
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  function say(text, kind) {
    message.textContent = text || "";
    message.className = "swab-message" + (kind ? " " + kind : "");
  }

  function render() {
    var tube = state.tube;
    document.getElementById("swab-barcode").textContent = tube ? tube.barcode : "—";
    document.getElementById("swab-count").textContent = tube ? tube.count : 0;
    document.getElementById("swab-capacity").textContent = capacity;
    var list = document.getElementById("swab-names");
    list.textContent = "";
    names.forEach(function (n) {
      var li = document.createElement("li");
      li.textContent = n;
      list.appendChild(li);
    });
    var open = tube && !tube.closed;
    prompt.textContent = open ? t.tScanPerson : t.tScanTube;
    document.getElementById("swab-queue").textContent = state.queue.length;
    var link = document.getElementById("swab-link");
    link.textContent = online ? t.tOnline : t.tOffline;
    link.className = "link-state " + (online ? "online" : "offline");
    var problems = document.getElementById("swab-problems");
    problems.textContent = "";
    state.problems.slice(-20).reverse().forEach(function (p) {
      var li = document.createElement("li");
      li.textContent = p;
      problems.appendChild(li);
    });
    stationSelect.value = state.station;
    if (stationSelect.value !== state.station && stationSelect.options.length) {
      // A station kept from before that the site no longer has: the server refuses it.
      state.station = stationSelect.options[0].value;
      stationSelect.value = state.station;
    }
  }

  function api(method, path, body) {
    return fetch("/api/sampling/rounds/" + roundId + path, {
      method: method,
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: body ? JSON.stringify(body) : undefined,
      credentials: "same-origin"
    });
  }

  function refusal(response) {
    return response.json().then(function (data) {
      var field = data.errors && data.errors[0] ? data.errors[0].field : null;
      return { field: field, message: data.detail || String(response.status) };
    }, function () {
      return { field: null, message: String(response.status) };
    });
  }

  function enqueue(op) {
    op.key = op.key || newKey();
    op.station = state.station;
    op.taken_at = new Date().toISOString();
    state.queue.push(op);
    save();
    render();
    flush();
  }

  // Send the queue in order; stop at the first failure that is not an answer.
  function flush() {
    if (sending || !state.queue.length) return;
    sending = true;
    var op = state.queue[0];
    var request;
    if (op.type === "close") request = api("POST", "/tubes/" + encodeURIComponent(op.barcode) + "/close");
    else if (op.type === "undo") request = api("POST", "/tubes/" + encodeURIComponent(op.barcode) + "/undo");
    else {
      var body = { barcode: op.barcode, key: op.key, station: op.station, taken_at: op.taken_at };
      if (op.person_id) body.person_id = op.person_id;
      else body.code = op.code;
      if (op.retest_reason) body.retest_reason = op.retest_reason;
      request = api("POST", "/swabs", body);
    }
    request.then(function (response) {
      // Logged out, or the page's CSRF token is stale (a login elsewhere): keep the queue;
      // it is sent after logging in again and reloading this page.
      if (response.status === 401 || response.status === 403) {
        online = false;
        say(t.tLogin, "bad");
        sending = false;
        render();
        setTimeout(flush, 5000);
        return;
      }
      if (response.status >= 500) throw new Error("server " + response.status);
      online = true;
      state.queue.shift();
      if (response.ok) {
        return response.json().then(function (data) {
          answered(op, data);
        });
      }
      return refusal(response).then(function (why) {
        refused(op, why);
      });
    }).then(function () {
      save();
      sending = false;
      render();
      if (state.queue.length) flush();
    }, function () {
      online = false;
      sending = false;
      render();
      setTimeout(flush, 3000);
    });
  }

  function answered(op, data) {
    if (op.type === "swab") {
      var shown = labels[op.key] || data.name + "  " + data.place;
      delete labels[op.key];
      // A re-swab shows the reason the sampler gave ("试管破损"), not the field's label.
      var reason = op.retest_reason ? t.tRetestWhy.replace("{reason}", op.retest_reason) : t.tRetest;
      names.push(shown + (data.retest ? "  (" + reason + ")" : ""));
      if (state.tube && state.tube.barcode === data.tube.barcode && !hasQueued(data.tube.barcode)) {
        state.tube.count = data.tube.swabs;
        state.tube.closed = data.tube.closed;
      }
      say(shown, "ok");
    } else if (op.type === "undo") {
      names.pop();
      say(t.tUndone, "ok");
    }
  }

  function hasQueued(barcode) {
    return state.queue.some(function (q) {
      return q.barcode === barcode;
    });
  }

  function refused(op, why) {
    if (op.type === "swab" && state.tube && state.tube.barcode === op.barcode) {
      state.tube.count = Math.max(0, state.tube.count - 1);
      state.tube.closed = false;
    }
    if (op.type === "swab" && why.field === "retest_reason") {
      pendingReason = op;
      reasonBox.hidden = false;
      reasonInput.focus();
      reasonInput.select();
      say(why.message, "warn");
      return;
    }
    if (op.type === "swab" && why.field === "tube" && state.tube && state.tube.barcode === op.barcode) {
      state.tube.closed = true;
    }
    state.problems.push(new Date().toTimeString().slice(0, 8) + "  " + (op.barcode || "") + "  " + why.message);
    say(why.message, "bad");
  }

  function looksLikeBarcode(text) {
    return /^[A-Z0-9][A-Z0-9-]{3,31}$/.test(text) && !/^(\d{15}|\d{17}[\dX])$/.test(text) && !/^FC\d?-/.test(text);
  }

  function openTube(barcode) {
    state.tube = { barcode: barcode, count: 0, closed: false };
    names = [];
    save();
    render();
    say("");
    if (!online) return;
    api("POST", "/tubes", { barcode: barcode, station: state.station }).then(function (response) {
      if (response.ok) {
        return response.json().then(function (data) {
          if (state.tube && state.tube.barcode === data.barcode && !hasQueued(data.barcode)) {
            state.tube.count = data.swabs;
            state.tube.closed = data.closed;
            save();
            render();
          }
        });
      }
      if (response.status < 500 && response.status !== 401 && response.status !== 403) {
        return refusal(response).then(function (why) {
          if (state.tube && state.tube.barcode === barcode) state.tube = null;
          save();
          render();
          say(why.message, "bad");
        });
      }
    }, function () {
      online = false;
      render();
    });
  }

  function addSwab(fields) {
    var tube = state.tube;
    tube.count += 1;
    if (tube.count >= capacity) tube.closed = true;
    enqueue(Object.assign({ type: "swab", barcode: tube.barcode }, fields));
  }

  // "5-1-101", or with (part of) a compound's name before it: "东苑 5-1-101", "东苑5-1-101".
  // A prefix of ASCII letters needs a space, so that a barcode like T5-1-101 stays one.
  var ROOM = /^(?:(.*\S)\s+|([^\x00-\x7f]+))?(\d+)-(\d+)-(\d+)$/;

  function pickRoom(match) {
    var compound = match[1] || match[2] || "";
    var query = "?building=" + encodeURIComponent(match[3]) + "&unit=" + encodeURIComponent(match[4]) +
      "&room=" + encodeURIComponent(match[5]) + (compound ? "&compound=" + encodeURIComponent(compound) : "");
    api("GET", "/room" + query).then(function (response) {
      if (!response.ok) return refusal(response).then(function (why) { say(why.message, "bad"); });
      return response.json().then(function (people) {
        if (!people.length) {
          say(t.tNobody, "warn");
          return;
        }
        // Never chosen for the sampler, even when the flat has one person: each line
        // names compound, building-unit-room and person, and a number picks.
        choices = people;
        choicesList.textContent = "";
        people.forEach(function (p) {
          var li = document.createElement("li");
          li.textContent = p.place + "  " + p.name + (p.sampled ? "  ✓" : "");
          choicesList.appendChild(li);
        });
        choicesList.hidden = false;
        var compounds = {};
        people.forEach(function (p) { compounds[p.compound] = true; });
        if (Object.keys(compounds).length > 1) say(t.tManyCompounds, "warn");
        else say(t.tPick);
      });
    }, function () {
      online = false;
      render();
    });
  }

  function scanned(raw) {
    var text = raw.trim();
    if (!text) return;
    var upper = text.toUpperCase().replace(/\s+/g, "");
    if (choices) {
      // Only a number picks ("5-1-102" is a new room, not the fifth line).
      if (/^\d{1,3}$/.test(text)) {
        var chosen = choices[parseInt(text, 10) - 1];
        if (!chosen) {
          say(t.tPick, "bad");
          return;
        }
        choices = null;
        choicesList.hidden = true;
        if (state.tube && !state.tube.closed) {
          var key = newKey();
          labels[key] = chosen.place + "  " + chosen.name; // as the sampler saw it picked
          addSwab({ person_id: chosen.person_id, code: null, key: key });
        }
        return;
      }
      choices = null;
      choicesList.hidden = true;
    }
    var tube = state.tube;
    if (!tube || tube.closed) {
      // Spaces inside are kept, so that "hello world" is refused, not taken as HELLOWORLD.
      var barcode = (text.normalize ? text.normalize("NFKC") : text).toUpperCase();
      if (looksLikeBarcode(barcode)) openTube(barcode);
      else if (looksLikeBarcode(upper) || !/^[A-Z0-9-]*$/.test(upper)) {
        say(/\s/.test(barcode) ? t.tBarcodeSpace : t.tBarcodeBad, "bad");
      } else say(t.tScanTube, "bad");
      return;
    }
    if (upper === tube.barcode) {
      say(t.tTubeOpen, "warn");
      return;
    }
    var room = ROOM.exec(text);
    if (room) {
      pickRoom(room);
      return;
    }
    if (looksLikeBarcode(upper)) {
      say(t.tCloseFirst, "bad");
      return;
    }
    addSwab({ code: text });
  }

  function closeTube() {
    var tube = state.tube;
    if (!tube || tube.closed) return;
    tube.closed = true;
    if (tube.count > 0) enqueue({ type: "close", barcode: tube.barcode });
    else {
      save();
      render();
    }
    say(t.tClosed + "  " + tube.barcode, "ok");
    input.focus();
  }

  function undo() {
    var tube = state.tube;
    if (tube && tube.closed && tube.count > 0) {
      say(t.tClosedNoUndo, "warn"); // it holds people, but a closed tube is sealed
      return;
    }
    if (!tube || tube.closed || tube.count === 0) {
      say(t.tEmpty, "warn");
      return;
    }
    var last = state.queue.length ? state.queue[state.queue.length - 1] : null;
    tube.count -= 1;
    if (last && last.type === "swab" && last.barcode === tube.barcode && !(sending && state.queue.length === 1)) {
      state.queue.pop(); // never sent: forget it here
      save();
      render();
      say(t.tUndone, "ok");
    } else {
      enqueue({ type: "undo", barcode: tube.barcode });
    }
    input.focus();
  }

  // Enter in either field: a scanner ends its text with it. (A form of two text fields
  // and no button is not submitted by Enter, so the keys are read directly.)
  function enter(event) {
    if (event.key !== "Enter") return;
    event.preventDefault();
    submitted();
  }
  input.addEventListener("keydown", enter);
  reasonInput.addEventListener("keydown", enter);
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    submitted();
  });

  function submitted() {
    if (pendingReason) {
      var op = pendingReason;
      pendingReason = null;
      reasonBox.hidden = true;
      var reason = reasonInput.value.trim();
      if (reason && state.tube && state.tube.barcode === op.barcode && !state.tube.closed) {
        op.retest_reason = reason;
        state.tube.count += 1;
        if (state.tube.count >= capacity) state.tube.closed = true;
        state.queue.push(op);
        save();
        render();
        flush();
      }
      input.focus();
      return;
    }
    var value = input.value;
    input.value = "";
    scanned(value);
  }
  document.getElementById("swab-close").addEventListener("click", closeTube);
  document.getElementById("swab-undo").addEventListener("click", undo);
  stationSelect.addEventListener("change", function () {
    state.station = stationSelect.value;
    save();
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "F2") {
      event.preventDefault();
      closeTube();
    } else if (event.key === "F4") {
      event.preventDefault();
      undo();
    } else if (event.key === "Escape") {
      input.value = "";
      if (pendingReason) {
        pendingReason = null;
        reasonBox.hidden = true;
      }
      choices = null;
      choicesList.hidden = true;
      input.focus();
    }
  });
  window.addEventListener("online", flush);
  setInterval(flush, 5000);
  render();
  flush();
  input.focus();
})();
