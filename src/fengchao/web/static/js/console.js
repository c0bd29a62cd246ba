// The gate console (卡口值守台): camera frames sent only when something moves, codes from
// the camera, the browser's BarcodeDetector or a keyboard-wedge scanner, search by room and
// pick, temperature, overrule with a reason, sounds, and an offline queue in localStorage.
(function () {
  "use strict";
  var root = document.getElementById("console");
  if (!root) return;
  var $ = function (id) { return document.getElementById(id); };
  var gateId = root.dataset.gate;
  var csrf = root.dataset.csrf;
  var QUEUE_KEY = "fc-console-queue-" + gateId;
  var DRAFT_KEY = "fc-console-draft-" + gateId;
  var CODE = /^(FC1-[A-Z2-7]{32}|FV1-[A-Z2-7]{20,190})$/i;  // resident code or visitor pass
  var MOTION = 6;        // mean grey-level change on the 64×48 canvas that counts as movement
  var STILL = 0.8;       // below this against the last frame sent: the same picture again
  var MIN_GAP_MS = 340;  // at most about three frames a second
  var T = function (name) { return root.dataset["t" + name] || ""; };

  var state = {
    mode: root.dataset.mode, direction: root.dataset.direction, online: true,
    card: null, sending: false, inViewUntil: 0, lastSent: 0, holdUntilQuiet: false,
    quietSince: 0, prev: null, lastSentGrey: null, temp: "", picks: [], pick: 0,
    recentKeys: {}, clearTimer: null, reason: null
  };
  window.fcConsole = { latencies: [], shown: [], state: state };

  // --- small helpers -------------------------------------------------------------------
  function newKey() {
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return "c-" + Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }
  // A double Enter sends the same passage twice with the same key: one event.
  function keyFor(signature) {
    var now = Date.now();
    var seen = state.recentKeys[signature];
    if (seen && now - seen.at < 5000) return seen.key;
    var key = newKey();
    state.recentKeys[signature] = { key: key, at: now };
    return key;
  }
  function load(name, fallback) {
    try { return JSON.parse(localStorage.getItem(name) || "null") || fallback; } catch (e) { return fallback; }
  }
  function save(name, value) {
    try { localStorage.setItem(name, JSON.stringify(value)); } catch (e) { /* full: nothing to do */ }
  }

  function Offline() { this.offline = true; }
  function Refused(message, status, errors) { this.message = message; this.status = status; this.errors = errors || []; }

  function post(url, fields, blob) {
    var body = new FormData();
    Object.keys(fields).forEach(function (k) {
      if (fields[k] !== null && fields[k] !== undefined && fields[k] !== "") body.append(k, fields[k]);
    });
    if (blob) body.append("frame", blob, "frame.jpg");
    return request(url, { method: "POST", body: body, headers: { "X-CSRF-Token": csrf } }, 10000);
  }
  function request(url, options, timeout) {
    var control = new AbortController();
    var timer = setTimeout(function () { control.abort(); }, timeout);
    options.signal = control.signal;
    options.credentials = "same-origin";
    return fetch(url, options).then(function (response) {
      clearTimeout(timer);
      if (response.status === 401) { window.location.href = "/login?next=" + encodeURIComponent(location.pathname); throw new Refused("", 401); }
      if (response.status >= 502 && response.status <= 504) throw new Offline();
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) throw new Refused(data.detail || response.statusText, response.status, data.errors);
        return data;
      });
    }, function () { clearTimeout(timer); throw new Offline(); });
  }

  // --- sounds (the guard is looking at the person, not the screen) -----------------------
  var audio = null;
  function tone(freq, start, length, type) {
    var osc = audio.createOscillator(), gain = audio.createGain();
    osc.type = type || "sine";
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, audio.currentTime + start);
    gain.gain.exponentialRampToValueAtTime(0.3, audio.currentTime + start + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + start + length);
    osc.connect(gain); gain.connect(audio.destination);
    osc.start(audio.currentTime + start); osc.stop(audio.currentTime + start + length + 0.05);
  }
  function sound(kind) {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      if (audio.state === "suspended") audio.resume();
      if (kind === "allow") { tone(880, 0, 0.12); tone(1320, 0.14, 0.16); }
      else if (kind === "pending") { tone(660, 0, 0.18); }
      else if (kind === "offline") { tone(440, 0, 0.1, "triangle"); }
      else { tone(220, 0, 0.3, "square"); tone(220, 0.4, 0.3, "square"); }
    } catch (e) { /* no audio device: the card still shows */ }
  }

  // --- the big card ------------------------------------------------------------------
  var cardEl = $("card"), decisionEl = $("card-decision"), nameEl = $("card-name");
  function setText(id, text) { $(id).textContent = text || ""; }
  function clearCard() {
    state.card = null;
    cardEl.className = "big-card state-idle";
    decisionEl.dataset.decision = "";
    decisionEl.textContent = "";
    ["card-name", "card-place", "card-role", "card-health", "card-reason", "card-extra"].forEach(function (id) { setText(id, ""); });
    $("card-photo").hidden = true;
    $("card-plate").hidden = true;
    $("overrule-open").hidden = true;
    closeOverrule();
  }
  function show(answer) {
    clearTimeout(state.clearTimer);
    state.card = answer;
    window.fcConsole.shown.push({ decision: answer.decision, name: answer.person ? answer.person.name : null });
    var d = answer.decision, person = answer.person, vehicle = answer.vehicle;
    cardEl.className = "big-card state-" + d + (answer.check ? " state-check" : "") + (answer.fever ? " state-fever" : "");
    decisionEl.dataset.decision = d;
    decisionEl.textContent = d === "allow" ? T("Allow") : d === "pending" ? T("Pending") : T("Deny");
    nameEl.textContent = person ? person.name : vehicle ? vehicle.plate : (answer.plate_read || "");
    setText("card-place", person ? person.place : vehicle ? vehicle.place : "");
    setText("card-role", person ? person.relation_text : "");
    setText("card-health", person ? person.health_text : "");
    $("card-health").className = person && person.health !== "normal" ? "health-bad" : "";
    var reason = d === "deny" ? answer.message : answer.reasons.filter(function (r) {
      return d !== "pending" || r.code.indexOf("masked") === 0;
    }).map(function (r) { return r.text; }).join("；");
    setText("card-reason", reason);
    var photo = $("card-photo");
    if (person && person.thumbnail) { photo.src = person.thumbnail; photo.hidden = false; } else { photo.hidden = true; }
    var extra = [];
    if (answer.check) extra.push(T("Check"));
    if (answer.fever) extra.push(T("Retest").replace("{m}", "3"));
    if (answer.late) extra.push(T("Late"));
    if (person) extra.push(person.last_sampled ? T("Sampled").replace("{d}", person.last_sampled) : T("NeverSampled"));
    setText("card-extra", extra.join(" · "));
    showPlate(answer.plate, vehicle, answer);
    $("overrule-open").hidden = !(answer.event_id && d !== "pending");
    sound(d);
    if (answer.event_id) htmxRefresh("events");
    state.clearTimer = setTimeout(function () { if (state.card === answer) clearCard(); }, 30000);
  }
  function showPlate(plate, vehicle, answer) {
    var box = $("card-plate");
    box.textContent = "";
    var unknown = answer && answer.decision === "deny" && !vehicle && answer.method === "plate";
    if (!plate && !unknown) { box.hidden = true; return; }
    box.hidden = false;
    if (plate) {
      plate.chars.forEach(function (ch) {
        var span = document.createElement("span");
        span.textContent = ch.c;
        span.className = ch.p < 0.8 ? "ch low" : "ch";
        span.title = Math.round(ch.p * 100) + "%";
        box.appendChild(span);
      });
    }
    if (unknown) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "visitor-vehicle";
      button.dataset.plate = answer.plate_read || "";
      button.textContent = T("VisitorVehicle");
      button.disabled = true;  // visitors come later: the hook is the fc:visitor-vehicle event
      box.appendChild(button);
      document.dispatchEvent(new CustomEvent("fc:visitor-vehicle", { detail: { plate: answer.plate_read } }));
    }
  }
  function htmxRefresh(id) {
    var el = $(id);
    if (el && window.htmx) window.htmx.ajax("GET", el.getAttribute("hx-get"), { target: el, swap: "innerHTML" });
  }
  function showError(message) {
    setText("card-extra", message);
    cardEl.classList.add("state-error");
  }

  // --- passages ----------------------------------------------------------------------
  function base(extra) {
    var fields = { direction: state.direction, mode: state.mode, temperature: state.temp };
    Object.keys(extra).forEach(function (k) { fields[k] = extra[k]; });
    return fields;
  }
  function sendValue(method, value, extra) {
    var fields = base({ method: method, value: value });
    if (extra) Object.keys(extra).forEach(function (k) { fields[k] = extra[k]; });
    fields.key = keyFor([method, value, fields.temperature, fields.retest || "", fields.direction].join("|"));
    if (!state.online) { enqueue(fields); return Promise.resolve(); }
    return post(root.dataset.pass, fields).then(function (answer) {
      state.temp = ""; $("temp").value = ""; saveDraft();
      answer.sent_temperature = fields.temperature;
      answer.sent_method = method; answer.sent_value = value;  // a visitor's pass, sent again
      state.needsTemp = null;
      show(answer);
    }, function (error) {
      if (error instanceof Offline) { setOnline(false); enqueue(fields); return; }
      // A visitor's pass shown before the temperature: the temperature typed next goes
      // with this pass, without a second scan.
      var temperatureMissing = (error.errors || []).some(function (e) { return e.field === "temperature"; });
      state.needsTemp = temperatureMissing && method === "code" ? { value: value, at: Date.now() } : null;
      if (error.message) showError(error.message);
    });
  }
  function sendFrame(blob, started) {
    state.sending = true;
    var fields = base({ method: "frame", key: newKey() });
    return post(root.dataset.pass, fields, blob).then(function (answer) {
      state.sending = false;
      if (answer.idle || (answer.decision === "deny" && answer.reasons.length && answer.reasons[0].code === "no_face")) {
        if (answer.plate) showPlate(answer.plate, null, null);
        if (answer.idle === "face_unavailable") cameraNote(T("NoFaces"), true);
        return;
      }
      if (answer.decision !== "pending") state.holdUntilQuiet = true;
      if (fields.temperature) { state.temp = ""; $("temp").value = ""; }
      answer.sent_temperature = fields.temperature;
      show(answer);
      // Frame grabbed → card painted: the next animation frame after the card is filled.
      requestAnimationFrame(function () {
        window.fcConsole.latencies.push({ ms: performance.now() - started, decision: answer.decision, server_ms: answer.ms });
      });
    }, function (error) {
      state.sending = false;
      if (error instanceof Offline) setOnline(false);
      else if (error.message) showError(error.message);
    });
  }

  // --- the camera: frames only when something moves ------------------------------------
  var video = $("camera"), motion = $("motion"), grab = $("grab");
  var mctx = motion.getContext("2d", { willReadFrequently: true });
  var detector = null;
  if ("BarcodeDetector" in window) {
    try { detector = new window.BarcodeDetector({ formats: ["qr_code"] }); } catch (e) { detector = null; }
  }
  function cameraNote(text, noRetry) {
    var note = $("camera-note");
    note.textContent = text || "";
    note.hidden = !text;
    $("camera-retry").hidden = !text || !!noRetry;
  }
  function startCamera() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) { cameraNote(T("NoCamera")); return; }
    navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false })
      .then(function (stream) {
        video.srcObject = stream;
        cameraNote("");
        stream.getVideoTracks().forEach(function (track) {
          track.addEventListener("ended", function () { cameraNote(T("CameraLost")); });
        });
      }, function () { cameraNote(T("NoCamera")); });
  }
  function grey(data) {
    var out = new Float32Array(data.length / 4);
    for (var i = 0, j = 0; i < data.length; i += 4, j++) out[j] = (data[i] * 3 + data[i + 1] * 6 + data[i + 2]) / 10;
    return out;
  }
  function difference(a, b) {
    if (!a || !b) return 255;
    var sum = 0;
    for (var i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
    return sum / a.length;
  }
  function tick() {
    var stream = video.srcObject;
    if (stream && stream.getVideoTracks().every(function (t) { return t.readyState === "ended"; })) {
      // Unplugged mid-shift (or stopped): say so once, keep the hand tools working.
      if ($("camera-note").hidden) cameraNote(T("CameraLost"));
      return;
    }
    if (video.readyState < 2 || !video.videoWidth) return;
    var started = performance.now();
    mctx.drawImage(video, 0, 0, 64, 48);
    var now = grey(mctx.getImageData(0, 0, 64, 48).data);
    var change = difference(now, state.prev);
    state.prev = now;
    var t = performance.now();
    if (change > MOTION) {
      state.inViewUntil = t + 2000;
      if (state.holdUntilQuiet && state.quietSince && t - state.quietSince > 1000) state.holdUntilQuiet = false;
      state.quietSince = 0;
    } else if (!state.quietSince) {
      state.quietSince = t;
    }
    if (!state.online || state.sending || t > state.inViewUntil || state.holdUntilQuiet) return;
    if (t - state.lastSent < MIN_GAP_MS) return;
    // A still photo held up gives the same picture again: it never counts as a new frame.
    if (difference(now, state.lastSentGrey) < STILL) return;
    state.lastSent = t;
    state.lastSentGrey = now;
    if (detector) {
      detector.detect(video).then(function (codes) {
        var found = codes.filter(function (c) { return CODE.test(c.rawValue); })[0];
        if (found) { state.holdUntilQuiet = true; sendValue("code", found.rawValue); }
        else captureAndSend(started);
      }, function () { captureAndSend(started); });
    } else {
      captureAndSend(started);
    }
  }
  // 480 px wide at JPEG quality 0.7: a face at two metres still has the ~80 px HOG needs,
  // and the server decodes, reads codes and detects on half the pixels of 640 × 480.
  var FRAME_WIDTH = 480, FRAME_QUALITY = 0.7;
  function captureAndSend(started) {
    var width = Math.min(video.videoWidth, FRAME_WIDTH);
    var height = Math.round(video.videoHeight * width / video.videoWidth);
    grab.width = width; grab.height = height;
    grab.getContext("2d").drawImage(video, 0, 0, width, height);
    state.sending = true;
    grab.toBlob(function (blob) { if (blob) sendFrame(blob, started); else state.sending = false; }, "image/jpeg", FRAME_QUALITY);
  }
  setInterval(tick, 120);

  // A photo when there is no camera, made small enough in the page before it is sent.
  $("upload").addEventListener("change", function (event) {
    var file = event.target.files && event.target.files[0];
    if (!file) return;
    var image = new Image();
    var url = URL.createObjectURL(file);
    image.onload = function () {
      var scale = Math.min(1, 1280 / Math.max(image.naturalWidth, image.naturalHeight));
      grab.width = Math.round(image.naturalWidth * scale);
      grab.height = Math.round(image.naturalHeight * scale);
      grab.getContext("2d").drawImage(image, 0, 0, grab.width, grab.height);
      URL.revokeObjectURL(url);
      grab.toBlob(function (blob) { sendFrame(blob, performance.now()); }, "image/jpeg", 0.9);
      event.target.value = "";
    };
    image.src = url;
  });
  $("camera-retry").addEventListener("click", startCamera);

  // --- by hand: codes, rooms, names, plates, temperature --------------------------------
  var entry = $("entry"), temp = $("temp");
  function looksLikePlate(text) {
    return state.mode === "vehicle" && /^[\u4e00-\u9fa5]?[A-Z][A-Z0-9]{4,6}[\u4e00-\u9fa5]?$/i.test(text.replace(/[\s·.-]/g, ""));
  }
  function submitEntry() {
    var text = entry.value.trim();
    if (!text) return;
    if (CODE.test(text)) { entry.value = ""; saveDraft(); sendValue("code", text.toUpperCase()); return; }
    // A thermometer that types like a keyboard types into whatever field has the focus.
    if (/^[34]\s*\d\s*[.,，]\s*\d{1,2}$/.test(text)) { entry.value = ""; temp.value = text; submitTemperature(); return; }
    if (looksLikePlate(text)) { entry.value = ""; saveDraft(); sendValue("plate", text.toUpperCase()); return; }
    if (state.picks.length && state.picksFor === text) { pickPerson(state.picks[state.pick]); return; }
    search(text);
  }
  function search(text) {
    if (!state.online) { renderPicks([], T("SearchOffline")); $("off-room").value = text; return; }
    request(root.dataset.people + "?q=" + encodeURIComponent(text), { method: "GET" }, 5000).then(function (data) {
      var people = [];
      data.households.forEach(function (h) {
        h.people.forEach(function (p) { p.place = h.place; people.push(p); });
      });
      state.picksFor = text;
      renderPicks(people, people.length ? "" : T("NoResult"));
    }, function (error) {
      if (error instanceof Offline) { setOnline(false); renderPicks([], T("SearchOffline")); }
      else renderPicks([], error.message);
    });
  }
  function renderPicks(people, message) {
    state.picks = people; state.pick = 0;
    var box = $("picks");
    box.textContent = "";
    if (message) { var p = document.createElement("p"); p.className = "muted"; p.textContent = message; box.appendChild(p); }
    people.forEach(function (person, i) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "pick" + (i === 0 ? " on" : "");
      button.dataset.index = i;
      button.textContent = person.place + "  " + person.name + "  " + person.relation + (person.health !== "normal" ? "  " + person.health_text : "");
      box.appendChild(button);
    });
  }
  function movePick(step) {
    if (!state.picks.length) return;
    state.pick = (state.pick + step + state.picks.length) % state.picks.length;
    Array.prototype.forEach.call($("picks").querySelectorAll(".pick"), function (b, i) { b.classList.toggle("on", i === state.pick); });
  }
  function pickPerson(person) {
    if (!person) return;
    renderPicks([], "");
    entry.value = ""; saveDraft();
    if (!state.online) { enqueue(base({ method: "room", value: person.place, name: person.name, key: newKey() })); return; }
    sendValue("person", String(person.id));
  }
  $("picks").addEventListener("click", function (event) {
    var button = event.target.closest(".pick");
    if (button) pickPerson(state.picks[Number(button.dataset.index)]);
  });
  function submitTemperature() {
    var value = temp.value.trim();
    if (!value) return;
    var card = state.card;
    // Measured after the card showed: the same person (a resident by id, a visitor by the
    // pass just read) again with the temperature; a fever card's second measurement is
    // its re-measurement.
    var again = null;
    if (card && card.person && card.decision !== "pending" && state.online) {
      if (card.person.id) again = ["person", String(card.person.id)];
      else if (card.sent_method === "code" && card.sent_value) again = ["code", card.sent_value];
    }
    if (again) {
      var extra = card.fever && card.sent_temperature ? { temperature: card.sent_temperature, retest: value } : { temperature: value };
      sendValue(again[0], again[1], extra);
      return;
    }
    // Only soon after the console asked: later, the temperature is for whoever comes next.
    if (state.needsTemp && state.online && Date.now() - state.needsTemp.at < 60000) {
      sendValue("code", state.needsTemp.value, { temperature: value });
      return;
    }
    state.temp = value;  // goes with the next passage
    setText("card-extra", value + " °C");
  }
  $("entry-form").addEventListener("submit", function (event) { event.preventDefault(); });
  entry.addEventListener("keydown", function (event) {
    if (event.key === "Enter") { event.preventDefault(); if (!scannerTook(event)) submitEntry(); }
    else if (event.key === "ArrowDown") { event.preventDefault(); movePick(1); }
    else if (event.key === "ArrowUp") { event.preventDefault(); movePick(-1); }
  });
  temp.addEventListener("keydown", function (event) {
    if (event.key === "Enter") { event.preventDefault(); if (!scannerTook(event)) submitTemperature(); }
  });
  // An unregistered courier, contractor or visitor: the guard vouches for the role.
  root.addEventListener("click", function (event) {
    var button = event.target.closest("[data-declare]");
    if (button) sendValue("role", button.dataset.declare);
  });
  var provinces = $("provinces");
  if (provinces) provinces.addEventListener("click", function (event) {
    var button = event.target.closest("[data-province]");
    if (!button) return;
    entry.value = button.dataset.province + entry.value.replace(/^[\u4e00-\u9fa5]/, "");
    entry.focus();
  });
  Array.prototype.forEach.call(root.querySelectorAll("[data-direction]"), function (button) {
    if (button === root) return;
    button.addEventListener("click", function () {
      state.direction = button.dataset.direction;
      Array.prototype.forEach.call(root.querySelectorAll("button[data-direction]"), function (b) { b.classList.toggle("on", b === button); });
    });
  });
  Array.prototype.forEach.call(root.querySelectorAll("button[data-mode]"), function (button) {
    button.addEventListener("click", function () {
      state.mode = button.dataset.mode;
      Array.prototype.forEach.call(root.querySelectorAll("button[data-mode]"), function (b) { b.classList.toggle("on", b === button); });
    });
  });

  // A keyboard-wedge scanner types a code fast and ends with Enter, wherever the focus is.
  var typed = { text: "", at: 0 };
  document.addEventListener("keydown", function (event) {
    if (event.key.length === 1) {
      var now = performance.now();
      typed.text = now - typed.at < 60 ? typed.text + event.key : event.key;
      typed.at = now;
    }
  }, true);
  function scannerTook(event) {
    var text = typed.text;
    typed.text = "";
    if (!CODE.test(text) || event.target === entry && CODE.test(entry.value.trim())) return false;
    event.target.value = event.target.value.replace(text, "");
    sendValue("code", text.toUpperCase());
    return true;
  }

  // --- overrule, always with a reason ------------------------------------------------------
  function openOverrule() {
    if (!state.card || !state.card.event_id || state.card.decision === "pending") return;
    state.reason = null;
    $("overrule").hidden = false;
    $("overrule-note").value = "";
    markReason();
    $("overrule").querySelector("button[data-reason]").focus();
  }
  function closeOverrule() { $("overrule").hidden = true; state.reason = null; }
  function markReason() {
    Array.prototype.forEach.call($("overrule").querySelectorAll("button[data-reason]"), function (b) {
      b.classList.toggle("on", b.dataset.reason === state.reason);
    });
  }
  function sendOverrule() {
    if (!state.reason) { showError(T("ReasonNeeded")); return; }
    var card = state.card;
    var fields = { event_id: card.event_id, reason: state.reason, note: $("overrule-note").value,
                   key: keyFor(["overrule", card.event_id, state.reason].join("|")) };
    post(root.dataset.overrule, fields).then(function (answer) { closeOverrule(); show(answer); },
      function (error) { if (error instanceof Offline) setOnline(false); else showError(error.message); });
  }
  $("overrule-open").addEventListener("click", openOverrule);
  $("overrule-cancel").addEventListener("click", closeOverrule);
  $("overrule-send").addEventListener("click", sendOverrule);
  $("overrule").addEventListener("click", function (event) {
    var button = event.target.closest("button[data-reason]");
    if (button) { state.reason = button.dataset.reason; markReason(); }
  });

  // Keys: Enter accepts, Esc clears, F8 overrules, digits pick the overrule's reason.
  document.addEventListener("keydown", function (event) {
    var panel = !$("overrule").hidden;
    if (event.key === "Escape") {
      event.preventDefault();
      if (panel) { closeOverrule(); entry.focus(); return; }
      clearCard(); entry.value = ""; temp.value = ""; state.temp = ""; state.needsTemp = null; renderPicks([], ""); saveDraft(); entry.focus();
      state.holdUntilQuiet = false;
    } else if (event.key === "F8") {
      event.preventDefault(); openOverrule();
    } else if (panel && /^[1-9]$/.test(event.key) && event.target !== $("overrule-note")) {
      var button = $("overrule").querySelector('button[data-digit="' + event.key + '"]');
      if (button) { event.preventDefault(); state.reason = button.dataset.reason; markReason(); if (state.reason === "override_other") $("overrule-note").focus(); }
    } else if (panel && event.key === "Enter") {
      event.preventDefault(); sendOverrule();
    }
  });
  document.addEventListener("click", function () {
    if (audio && audio.state === "suspended") audio.resume();
  });

  // --- offline: say so at once, keep working by hand, send when the server is back --------
  function setOnline(online) {
    if (online === state.online) return;
    state.online = online;
    $("offline-bar").hidden = online;
    $("offline-form").hidden = online;
    root.classList.toggle("is-offline", !online);
    if (!online) { sound("offline"); showOfflineCard(); }
    else {
      // The offline card (or a passage queued by hand) is not what happens now: clear it.
      if (cardEl.classList.contains("state-offline")) clearCard();
      flush();
      htmxRefresh("events");
    }
  }
  function showOfflineCard() {
    if (state.card) return;
    cardEl.className = "big-card state-offline";
    decisionEl.dataset.decision = "";
    decisionEl.textContent = T("Offline");
  }
  function queue() { return load(QUEUE_KEY, []); }
  function enqueue(fields) {
    fields.device_time = new Date().toISOString();
    var items = queue();
    if (!items.some(function (i) { return i.key === fields.key; })) items.push(fields);
    save(QUEUE_KEY, items);
    renderQueue();
    clearCard();
    cardEl.className = "big-card state-offline";
    decisionEl.textContent = T("Offline");
    setText("card-name", fields.name || fields.value || "");
    setText("card-place", fields.method === "room" ? fields.value : "");
    setText("card-reason", T("Queued"));
    sound("offline");
  }
  function renderQueue() {
    var items = queue();
    $("queue-count").textContent = String(items.filter(function (i) { return !i.error; }).length);
    var list = $("queue");
    list.textContent = "";
    items.forEach(function (item) {
      var li = document.createElement("li");
      li.className = item.error ? "failed" : "waiting";
      li.textContent = new Date(item.device_time).toLocaleTimeString([], { hour12: false }) + "  " + (item.name || "") + " " + (item.value || "") +
        (item.error ? "  " + T("Failed") + "：" + item.error : "");
      if (item.error) {
        var drop = document.createElement("button");
        drop.type = "button"; drop.textContent = "×"; drop.dataset.drop = item.key;
        li.appendChild(drop);
      }
      list.appendChild(li);
    });
  }
  $("queue").addEventListener("click", function (event) {
    var key = event.target.dataset && event.target.dataset.drop;
    if (!key) return;
    save(QUEUE_KEY, queue().filter(function (i) { return i.key !== key; }));
    renderQueue();
  });
  var flushing = false;
  function flush() {
    if (flushing || !state.online) return;
    var item = queue().filter(function (i) { return !i.error; })[0];
    if (!item) return;
    flushing = true;
    var fields = {};
    Object.keys(item).forEach(function (k) { fields[k] = item[k]; });
    fields.sent_at = new Date().toISOString();
    post(root.dataset.pass, fields).then(function () {
      save(QUEUE_KEY, queue().filter(function (i) { return i.key !== item.key; }));
      flushing = false; renderQueue(); flush();
    }, function (error) {
      flushing = false;
      if (error instanceof Offline) { setOnline(false); return; }
      var items = queue();
      items.forEach(function (i) { if (i.key === item.key) i.error = error.message || String(error.status); });
      save(QUEUE_KEY, items); renderQueue(); flush();
    });
  }
  $("offline-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var room = $("off-room").value.trim(), name = $("off-name").value.trim();
    if (!room || !name) return;
    enqueue(base({ method: "room", value: room, name: name, key: newKey() }));
    $("off-room").value = ""; $("off-name").value = ""; saveDraft();
  });
  function heartbeat() {
    request(root.dataset.ping, { method: "GET" }, 2500).then(function (data) {
      setOnline(true);
      var banner = $("level-banner");
      if (banner && banner.dataset.level !== data.level) htmxRefreshBanner();
      if (queue().some(function (i) { return !i.error; })) flush();
    }, function (error) { if (error instanceof Offline) setOnline(false); });
  }
  function htmxRefreshBanner() {
    var banner = $("level-banner");
    if (banner && window.htmx) window.htmx.ajax("GET", banner.getAttribute("hx-get"), { target: banner, swap: "outerHTML" });
  }
  window.addEventListener("offline", function () { setOnline(false); });
  window.addEventListener("online", heartbeat);
  setInterval(heartbeat, 3000);

  // Nothing typed is lost on a reload.
  function saveDraft() {
    save(DRAFT_KEY, { entry: entry.value, temp: temp.value, room: $("off-room").value, name: $("off-name").value });
  }
  ["entry", "temp", "off-room", "off-name"].forEach(function (id) { $(id).addEventListener("input", saveDraft); });
  var draft = load(DRAFT_KEY, {});
  entry.value = draft.entry || ""; temp.value = draft.temp || "";
  $("off-room").value = draft.room || ""; $("off-name").value = draft.name || "";
  renderQueue();
  clearCard();
  startCamera();
  heartbeat();
  // A reload while the server is gone opens the last copy of this page (console-sw.js).
  if (navigator.serviceWorker) navigator.serviceWorker.register("/gates/console-sw.js", { scope: "/gates/" }).catch(function () {});
})();
