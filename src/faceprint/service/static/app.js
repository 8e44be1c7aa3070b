// faceprint web page: plain JS, no build step. Talks to /v1 with the API key the user enters.
"use strict";

const KNOWN = "#00ff00";    // box colour of recognised faces (tests look for it)
const UNKNOWN = "#ff00ff";  // box colour of unrecognised faces
const $ = (id) => document.getElementById(id);
let apiKey = sessionStorage.getItem("faceprint-key") || "";

function say(text, isError = false) {
  const m = $("message");
  m.textContent = text;
  m.className = isError ? "error" : "";
}

async function api(method, path, body) {
  if (!apiKey) throw new Error("enter an API key first");
  const headers = { "Authorization": "Bearer " + apiKey };
  let payload = body;
  if (body && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const res = await fetch(path, { method, headers, body: payload });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = { detail: text }; }
  if (!res.ok) {
    const err = new Error(problemText(data) || res.statusText);
    err.status = res.status;
    throw err;
  }
  return data;
}

// A problem body as one sentence: a validation failure names its field instead of only the title.
function problemText(data) {
  if (!data) return "";
  const first = Array.isArray(data.errors) && data.errors.length ? data.errors[0] : null;
  if (first && first.msg) {
    const field = (first.loc || []).filter((p) => typeof p === "string" && p !== "body").pop();
    return field ? `${field}: ${first.msg}` : first.msg;
  }
  return data.detail || data.title || "";
}

// `name: message` unless the server's message already starts with the name.
function about(name, message) {
  return message.startsWith(name + ":") ? message : `${name}: ${message}`;
}

function imageForm(file, field = "image", name = undefined) {
  const form = new FormData();
  form.append(field, file, name || file.name || "frame.jpg");
  return form;
}

function label(face) {
  if (!face.name) return "unknown";
  return face.distance == null ? face.name : `${face.name} (${face.distance.toFixed(2)})`;
}

// Boxes and names over an image drawn on `ctx`; sx, sy scale image pixels to canvas pixels.
function drawFaces(ctx, faces, sx = 1, sy = 1) {
  const font = Math.max(14, Math.round(ctx.canvas.width / 40));
  ctx.lineWidth = Math.max(3, Math.round(ctx.canvas.width / 200));
  ctx.font = `bold ${font}px sans-serif`;
  ctx.textBaseline = "bottom";
  for (const face of faces) {
    const [x1, y1, x2, y2] = face.box;
    const colour = face.name ? KNOWN : UNKNOWN;
    ctx.strokeStyle = colour;
    ctx.strokeRect(x1 * sx, y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy);
    const text = label(face);
    const w = ctx.measureText(text).width + 8;
    const ty = Math.max(font + 4, y1 * sy);
    ctx.fillStyle = colour;
    ctx.fillRect(x1 * sx, ty - font - 4, w, font + 4);
    ctx.fillStyle = "#000";
    ctx.fillText(text, x1 * sx + 4, ty - 2);
  }
}

function listFaces(ul, faces) {
  ul.replaceChildren();
  for (const face of faces) {
    const li = document.createElement("li");
    li.className = face.name ? "known" : "unknown";
    li.textContent = label(face);
    ul.appendChild(li);
  }
}

// ---- API key ----
function showKey() {
  $("key-status").textContent = apiKey ? `key ${apiKey.slice(0, 7)}... set` : "no key";
}
$("key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  apiKey = $("api-key").value.trim();
  sessionStorage.setItem("faceprint-key", apiKey);
  $("api-key").value = "";
  showKey();
  say(apiKey ? "API key set" : "API key cleared");
});

// ---- tabs ----
for (const button of document.querySelectorAll("#tabs button")) {
  button.addEventListener("click", () => {
    for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b === button);
    for (const s of document.querySelectorAll(".tab")) s.classList.toggle("active", s.id === "tab-" + button.dataset.tab);
    say("");  // a message belongs to the tab it came from
    if (button.dataset.tab === "people") refreshPeople();
  });
}

// ---- identify an uploaded photo ----
// The previous photo, its boxes and names go as soon as another file is chosen, so a failed
// upload never leaves them next to the new file's name.
function clearIdentify() {
  const canvas = $("identify-canvas");
  canvas.width = 640;
  canvas.height = 480;
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  delete canvas.dataset.faces;
  $("identify-result").replaceChildren();
}

$("identify-file").addEventListener("change", async () => {
  const file = $("identify-file").files[0];
  clearIdentify();
  if (!file) return;
  try {
    say("identifying...");
    const result = await api("POST", "/v1/identify", imageForm(file));
    const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    const canvas = $("identify-canvas");
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(bitmap, 0, 0);
    drawFaces(ctx, result.faces);
    listFaces($("identify-result"), result.faces);
    canvas.dataset.faces = String(result.faces.length);
    say(`${result.faces.length} face(s) found`);
  } catch (e) { clearIdentify(); say(about(file.name, e.message), true); }
});

// ---- webcam ----
let stream = null;
async function camera() {
  if (!stream) {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    $("live-video").srcObject = stream;
    await $("live-video").play();
  }
  return $("live-video");
}

function grab(video) {
  const c = document.createElement("canvas");
  c.width = video.videoWidth;
  c.height = video.videoHeight;
  c.getContext("2d").drawImage(video, 0, 0);
  return new Promise((resolve) => c.toBlob(resolve, "image/jpeg", 0.85));
}

let live = false;
let liveSession = null;
// One tracked stream per start: the server keeps its tracks, so a name goes at a shot cut or
// when the face's evidence stops supporting it, exactly as in `faceprint video`.
function newSession() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return "s" + Math.random().toString(36).slice(2) + Date.now().toString(36);
}

async function liveLoop() {
  const video = await camera();
  const overlay = $("live-overlay");
  let frames = 0;
  const t0 = performance.now();
  liveSession = newSession();
  while (live) {
    if (!video.videoWidth) { await new Promise((r) => setTimeout(r, 50)); continue; }
    const blob = await grab(video);
    try {
      const result = await api("POST", `/v1/live/${liveSession}/frames`, imageForm(blob, "image", "frame.jpg"));
      overlay.width = video.videoWidth;
      overlay.height = video.videoHeight;
      const ctx = overlay.getContext("2d");
      ctx.clearRect(0, 0, overlay.width, overlay.height);
      drawFaces(ctx, result.faces);
      listFaces($("live-names"), result.faces);
      frames += 1;
      overlay.dataset.frames = String(frames);
      $("live-fps").textContent = `${(frames / ((performance.now() - t0) / 1000)).toFixed(1)} frames/s`;
    } catch (e) {
      say(e.message, true);
      if (e.status === 429) await new Promise((r) => setTimeout(r, 1000));
      else if (e.status === 401 || e.status === 403) break;
    }
  }
}

$("live-start").addEventListener("click", async () => {
  try {
    live = true;
    $("live-start").disabled = true;
    $("live-stop").disabled = false;
    say("live recognition running");
    await liveLoop();
  } catch (e) { say(e.message, true); }
  live = false;
  $("live-start").disabled = false;
  $("live-stop").disabled = true;
});
$("live-stop").addEventListener("click", () => {
  live = false;
  if (liveSession) { api("DELETE", `/v1/live/${liveSession}`).catch(() => {}); liveSession = null; }
  if (stream) { for (const t of stream.getTracks()) t.stop(); stream = null; }
  say("live recognition stopped");
});

// ---- enroll ----
function logEnroll(text, ok = true) {
  const li = document.createElement("li");
  li.className = ok ? "known" : "unknown";
  li.textContent = text;
  $("enroll-log").appendChild(li);
}

async function ensurePerson(name) {
  try { await api("POST", "/v1/people", { name }); }
  catch (e) { if (e.status !== 409) throw e; }  // already enrolled: add faces to it
}

async function addFace(name, blob, filename) {
  const result = await api("POST", `/v1/people/${encodeURIComponent(name)}/faces`, imageForm(blob, "image", filename));
  logEnroll(`${name}: added ${filename}`);
  return result;
}

$("enroll-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const name = $("enroll-name").value.trim();
  const files = Array.from($("enroll-files").files);
  if (!name || files.length === 0) { say("give a name and at least one photo", true); return; }
  try {
    await ensurePerson(name);
    let added = 0;
    for (const file of files) {
      try { await addFace(name, file, file.name); added += 1; }
      catch (e) { logEnroll(about(file.name, e.message), false); }
    }
    say(`enrolled ${added} of ${files.length} photo(s) for ${name}`);
  } catch (e) { say(e.message, true); }
});

$("enroll-webcam").addEventListener("click", async () => {
  const name = $("enroll-name").value.trim();
  if (!name) { say("give a name first", true); return; }
  try {
    const blob = await grab(await camera());
    await ensurePerson(name);
    await addFace(name, blob, "webcam.jpg");
    say(`enrolled a webcam frame for ${name}`);
  } catch (e) { say(e.message, true); }
});

// ---- people ----
async function refreshPeople() {
  const tbody = document.querySelector("#people-table tbody");
  try {
    const people = await api("GET", "/v1/people");
    tbody.replaceChildren();
    for (const person of people) {
      const tr = document.createElement("tr");
      tr.dataset.name = person.name;
      const cells = [person.name, String(person.samples ?? "")].map((t) => {
        const td = document.createElement("td"); td.textContent = t; return td;
      });
      const input = document.createElement("input");
      input.placeholder = "new name";
      const actions = document.createElement("td");
      const typed = (what) => {
        const value = input.value.trim();
        if (!value) throw new Error(`type ${what} in the box next to ${person.name} first`);
        return value;
      };
      for (const [text, fn] of [
        ["Rename", () => api("PATCH", `/v1/people/${encodeURIComponent(person.name)}`, { name: typed("the new name") })],
        ["Merge into", () => api("POST", `/v1/people/${encodeURIComponent(person.name)}/merge`,
          { into: typed("the name of the person to merge into") })],
        ["Delete", () => confirm(`Delete ${person.name} and all their faces?`)
          ? api("DELETE", `/v1/people/${encodeURIComponent(person.name)}`) : null],
      ]) {
        const b = document.createElement("button");
        b.textContent = text;
        b.className = "act-" + text.split(" ")[0].toLowerCase();
        b.addEventListener("click", async () => {
          try { if ((await fn()) !== null) { say(`${text.toLowerCase()}: ${person.name} done`); await refreshPeople(); } }
          catch (e) { say(e.message, true); }
        });
        actions.appendChild(b);
      }
      const inputCell = document.createElement("td");
      inputCell.appendChild(input);
      tr.append(...cells, inputCell, actions);
      tbody.appendChild(tr);
    }
    say(`${people.length} people enrolled`);
  } catch (e) { say(e.message, true); }
}
$("people-refresh").addEventListener("click", refreshPeople);

// ---- verify ----
$("verify-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new FormData();
  form.append("image_a", $("verify-a").files[0]);
  form.append("image_b", $("verify-b").files[0]);
  $("verify-result").textContent = "";
  $("verify-result").className = "verdict";
  try {
    say("comparing...");
    const r = await api("POST", "/v1/verify", form);
    const p = r.probability == null ? "n/a (server has no calibration)" : `${(100 * r.probability).toFixed(1)}%`;
    $("verify-result").textContent =
      `${r.match ? "Same person" : "Different people"}: distance ${r.distance.toFixed(4)} ` +
      `(threshold ${r.threshold}), match probability ${p}`;
    $("verify-result").className = "verdict " + (r.match ? "known" : "unknown");
    say("");
  } catch (e) { say(e.message, true); }
});

showKey();
