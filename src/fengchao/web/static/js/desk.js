// The enrolment desk (人脸录入台): the live camera with the quality verdict of each frame
// in words, two or three good frames captured (never the same picture twice: a still photo
// held up is not a live person), the consent, and the enrolment of those frames.
(function () {
  "use strict";
  var root = document.getElementById("desk");
  if (!root) return;
  var $ = function (id) { return document.getElementById(id); };
  var T = function (name) { return root.dataset["t" + name] || ""; };
  var MIN = parseInt(root.dataset.min, 10) || 2, MAX = parseInt(root.dataset.max, 10) || 3;
  var STILL = 0.6;        // mean grey-level change on the 32×24 copy below which it is the same picture
  var CHECK_GAP_MS = 250; // between two verdicts (one at a time): a few a second at most
  var WIDTH = 640;        // the frames sent: the camera's own size, enough for a 112 px thumbnail

  var video = $("desk-camera"), grab = $("desk-grab"), small = $("desk-small");
  var sctx = small.getContext("2d", { willReadFrequently: true });
  var state = { checking: false, good: null, shots: [], sending: false };
  window.fcDesk = { verdicts: [], state: state };

  function note(text, retry) {
    var el = $("desk-note");
    el.textContent = text || "";
    el.hidden = !text;
    $("desk-retry").hidden = !retry;
  }
  function verdict(code, message) {
    var el = $("desk-verdict");
    el.dataset.code = code;
    el.textContent = message || "";
    $("desk-capture").disabled = code !== "ok" || state.shots.length >= MAX;
    window.fcDesk.verdicts.push(code);
  }
  function error(text) {
    var el = $("desk-error");
    el.textContent = text || "";
    el.hidden = !text;
  }
  function grey(canvas) {
    sctx.drawImage(canvas, 0, 0, 32, 24);
    var data = sctx.getImageData(0, 0, 32, 24).data, out = new Float32Array(32 * 24);
    for (var i = 0, j = 0; i < data.length; i += 4, j++) out[j] = (data[i] * 3 + data[i + 1] * 6 + data[i + 2]) / 10;
    return out;
  }
  function difference(a, b) {
    var sum = 0;
    for (var i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
    return sum / a.length;
  }

  function send(url, body) {
    return fetch(url, { method: "POST", body: body, credentials: "same-origin", headers: { "X-CSRF-Token": root.dataset.csrf } })
      .then(function (response) {
        if (response.status === 401) { window.location.href = "/login?next=" + encodeURIComponent(location.pathname); }
        return response.json().catch(function () { return {}; }).then(function (data) {
          return { ok: response.ok, data: data };
        });
      });
  }

  // --- the camera and the verdict of each frame -----------------------------------------
  function startCamera() {
    note(T("Starting"));
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) { refused(); return; }
    navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false })
      .then(function (stream) {
        video.srcObject = stream;
        note("");
        stream.getVideoTracks().forEach(function (track) {
          track.addEventListener("ended", function () { note(T("CameraLost"), true); verdict("", ""); });
        });
      }, refused);
  }
  function refused() {
    note(T("NoCamera"), true);
    verdict("no_camera", "");
  }
  function live() {
    var stream = video.srcObject;
    return stream && stream.getVideoTracks().some(function (t) { return t.readyState === "live"; }) &&
      video.readyState >= 2 && video.videoWidth;
  }
  function tick() {
    if (state.checking || state.sending || !live()) return;
    var width = Math.min(video.videoWidth, WIDTH);
    grab.width = width;
    grab.height = Math.round(video.videoHeight * width / video.videoWidth);
    grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
    var picture = grey(grab);
    state.checking = true;
    grab.toBlob(function (blob) {
      if (!blob) { state.checking = false; return; }
      var body = new FormData();
      body.append("frame", blob, "frame.jpg");
      send(root.dataset.check, body).then(function (answer) {
        state.checking = false;
        if (!answer.ok) { verdict("error", answer.data.detail || answer.data.message || ""); return; }
        state.good = answer.data.ok ? { blob: blob, grey: picture } : null;
        verdict(answer.data.ok ? "ok" : answer.data.code, answer.data.message);
      }, function () {
        state.checking = false;
        state.good = null;
        verdict("offline", T("Offline"));
      });
    }, "image/jpeg", 0.9);
  }

  // --- captured frames --------------------------------------------------------------------
  function counted() {
    var left = MIN - state.shots.length;
    $("desk-count").textContent = state.shots.length === 0 ? "" : left > 0 ? T("More").replace("{n}", left) : T("Enough");
    $("desk-enrol").disabled = state.shots.length < MIN || state.sending;
    $("desk-capture").disabled = $("desk-verdict").dataset.code !== "ok" || state.shots.length >= MAX;
  }
  function capture() {
    error("");
    var good = state.good;
    if (!good) { error(T("NotGood")); return; }
    if (state.shots.length >= MAX) return;
    // Two frames of a still photo held up are the same picture: not two frames of a live face.
    if (state.shots.some(function (s) { return difference(s.grey, good.grey) < STILL; })) { error(T("Same")); return; }
    var shot = { blob: good.blob, grey: good.grey, url: URL.createObjectURL(good.blob) };
    state.shots.push(shot);
    var item = document.createElement("li");
    var image = document.createElement("img");
    image.src = shot.url;
    image.alt = "";
    var remove = document.createElement("button");
    remove.type = "button";
    remove.className = "desk-remove";
    remove.textContent = T("Remove");
    remove.addEventListener("click", function () {
      state.shots = state.shots.filter(function (s) { return s !== shot; });
      URL.revokeObjectURL(shot.url);
      item.remove();
      counted();
    });
    item.appendChild(image);
    item.appendChild(remove);
    $("desk-shots").appendChild(item);
    counted();
  }
  $("desk-capture").addEventListener("click", capture);
  document.addEventListener("keydown", function (event) {
    var field = event.target instanceof Element && event.target.closest("input, select, textarea, button");
    if (event.key === " " && !field) { event.preventDefault(); capture(); }
  });
  $("desk-retry").addEventListener("click", startCamera);

  $("desk-form").addEventListener("submit", function (event) {
    event.preventDefault();
    if (state.shots.length < MIN || state.sending) return;
    var body = new FormData($("desk-form"));
    state.shots.forEach(function (s, i) { body.append("frames", s.blob, "frame-" + (i + 1) + ".jpg"); });
    state.sending = true;
    $("desk-busy").hidden = false;
    counted();
    error("");
    send(root.dataset.capture, body).then(function (answer) {
      if (answer.ok) { window.location.href = root.dataset.done; return; }
      state.sending = false;
      $("desk-busy").hidden = true;
      error(answer.data.message || answer.data.detail || "");
      counted();
    }, function () {
      state.sending = false;
      $("desk-busy").hidden = true;
      error(T("Offline"));
      counted();
    });
  });

  startCamera();
  setInterval(tick, CHECK_GAP_MS);
})();
