// The check-in page's camera: reads a resident code from the camera and puts it in the
// code field (the browser's BarcodeDetector where it exists, otherwise the server reads a
// frame every half second). The guard then presses 签到 or 签退 (Enter is 签到).
(function () {
  "use strict";
  function start() {
    var form = document.querySelector("[data-scan-code]");
    if (!form) return;
    var input = form.querySelector("input[name=code]");
    var button = document.getElementById("scan-start");
    var video = document.getElementById("scan-video");
    var status = document.getElementById("scan-status");
    var canvas = document.createElement("canvas");
    var detector = null, stream = null, timer = null, busy = false;
    var T = function (name) { return form.dataset["t" + name] || ""; };
    if ("BarcodeDetector" in window) {
      try { detector = new window.BarcodeDetector({ formats: ["qr_code"] }); } catch (e) { detector = null; }
    }

    function stop() {
      clearInterval(timer);
      timer = null;
      if (stream) stream.getTracks().forEach(function (track) { track.stop(); });
      stream = null;
      video.hidden = true;
    }

    function found(text) {
      stop();
      input.value = text;
      status.textContent = T("Found");
      var accept = form.querySelector("button[name=action][value=in]");
      if (accept) accept.focus();
    }

    function fromServer() {
      if (!video.videoWidth) return Promise.resolve(null);
      var scale = Math.min(1, 640 / video.videoWidth);
      canvas.width = Math.round(video.videoWidth * scale);
      canvas.height = Math.round(video.videoHeight * scale);
      canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
      return new Promise(function (resolve) { canvas.toBlob(resolve, "image/jpeg", 0.85); })
        .then(function (blob) {
          if (!blob) return null;
          var body = new FormData();
          body.append("frame", blob, "frame.jpg");
          return fetch("/duty/checkin/read-code", {
            method: "POST", body: body, credentials: "same-origin",
            headers: { "X-CSRF-Token": form.dataset.csrf },
          }).then(function (r) { return r.ok ? r.json() : null; })
            .then(function (answer) { return answer && answer.code; });
        });
    }

    function look() {
      if (busy || !stream) return;
      busy = true;
      var reading = detector
        ? detector.detect(video).then(function (codes) { return codes.length ? codes[0].rawValue : null; })
        : fromServer();
      reading.then(function (text) { if (text && stream) found(text); })
        .catch(function () { /* a frame that could not be read: the next one may */ })
        .then(function () { busy = false; });
    }

    button.addEventListener("click", function () {
      if (stream) { stop(); status.textContent = ""; return; }
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) { status.textContent = T("NoCamera"); return; }
      navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment", width: { ideal: 640 } }, audio: false })
        .then(function (s) {
          stream = s;
          video.srcObject = s;
          video.hidden = false;
          status.textContent = T("Looking");
          timer = setInterval(look, 500);
        })
        .catch(function () { status.textContent = T("NoCamera"); });
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
