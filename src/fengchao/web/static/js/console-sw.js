// The gate console's service worker (scope /gates/): a reload while the server is gone
// still opens the console from the last copy, so the guard keeps working by hand and the
// queue in localStorage is kept. Only the console page and /static files are kept; the
// API and everything else go to the network as without it. The copy is replaced on every
// load that reaches the server and deleted at the next login page (app.js).
"use strict";
var CACHE = "fc-console-v1";
var PAGE = /^\/gates\/\d+\/console$/;

self.addEventListener("install", function () { self.skipWaiting(); });
self.addEventListener("activate", function (event) { event.waitUntil(self.clients.claim()); });
self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") return;
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  var page = request.mode === "navigate" && PAGE.test(url.pathname);
  if (!page && url.pathname.indexOf("/static/") !== 0) return;
  event.respondWith(
    fetch(request).then(function (response) {
      // A console page that redirected (to the login) is not the console.
      if (response.ok && !response.redirected) {
        var copy = response.clone();
        caches.open(CACHE).then(function (cache) { cache.put(request, copy); });
      }
      return response;
    }).catch(function () {
      return caches.open(CACHE).then(function (cache) { return cache.match(request); })
        .then(function (hit) { return hit || Response.error(); });
    })
  );
});
