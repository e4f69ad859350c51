// The page of `spectrotune serve`: choose, drop or record audio, POST it to /v1/predict, draw the answer.
// Plain browser JavaScript, no libraries and no network beyond this server (the page must work offline).
"use strict";

const COLORS = ["#3b5bdb", "#e8590c", "#2f9e44", "#c2255c", "#7048e8", "#1098ad", "#f08c00", "#5c940d",
                "#d6336c", "#495057", "#0b7285", "#862e9c", "#a61e4d", "#364fc7"];
const $ = (id) => document.getElementById(id);
const state = { reply: null, url: null, recorder: null, labels: [] };

function setStatus(text, isError) {
  const el = $("status");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

async function loadModel() {
  try {
    const r = await fetch("/v1/model");
    const m = await r.json();
    state.labels = m.labels;
    const fe = m.front_end;
    $("model").textContent = `model ${m.name} (${m.version}) · ${m.labels.length} genres: ${m.labels.join(", ")} · ` +
      `${fe.window_seconds} s windows every ${fe.hop_seconds} s at ${fe.sample_rate} Hz`;
  } catch (e) {
    $("model").textContent = "could not read /v1/model: " + e;
  }
}

async function predict(blob, name) {
  const form = new FormData();
  form.append("file", blob, name);
  setStatus(`analysing ${name}…`);
  $("drop").setAttribute("aria-busy", "true");
  try {
    const r = await fetch("/v1/predict", { method: "POST", body: form });
    const body = await r.json().catch(() => null);
    if (!r.ok) {
      const msg = body && body.error ? body.error.message : `HTTP ${r.status}`;
      setStatus(`${name}: ${msg}`, true);
      return;
    }
    show(body, blob);
    setStatus(`${name}: ${body.n_windows} windows in ${body.seconds} s`);
  } catch (e) {
    setStatus(`${name}: the request failed (${e})`, true);
  } finally {
    $("drop").removeAttribute("aria-busy");
  }
}

function show(reply, blob) {
  state.reply = reply;
  if (state.url) URL.revokeObjectURL(state.url);
  state.url = URL.createObjectURL(blob);
  $("player").src = state.url;
  $("title").textContent = reply.file.name;
  const flags = [];
  if (reply.file.duration_seconds != null) flags.push(`${reply.file.duration_seconds.toFixed(1)} s`);
  flags.push(`${reply.n_windows} window${reply.n_windows === 1 ? "" : "s"}`);
  if (reply.padded) flags.push("shorter than one window: padded");
  if (reply.silent) flags.push("silent: no genre given");
  $("flags").textContent = flags.join(" · ");
  drawBars(reply);
  $("result").hidden = false;
  drawTimeline();
  document.body.dataset.ready = "1";
}

function colorOf(label) {
  const labels = state.reply.timeline.labels;
  return COLORS[labels.indexOf(label) % COLORS.length];
}

function drawBars(reply) {
  const list = $("genres");
  list.replaceChildren();
  if (reply.silent) {
    const li = document.createElement("li");
    li.textContent = "The clip is silent: there is nothing to classify.";
    list.append(li);
    return;
  }
  for (const { genre, probability } of reply.top) {
    const li = document.createElement("li");
    li.className = "genre";
    li.dataset.genre = genre;
    const name = document.createElement("div");
    name.className = "name";
    const label = document.createElement("span");
    label.textContent = genre;
    const value = document.createElement("span");
    value.textContent = (100 * probability).toFixed(1) + "%";
    name.append(label, value);
    const track = document.createElement("div");
    track.className = "track";
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = Math.max(0.5, 100 * probability).toFixed(2) + "%";
    bar.style.background = colorOf(genre);
    track.append(bar);
    li.append(name, track);
    list.append(li);
  }
}

// The plot: one line per genre (probability 0..1) at each window's centre, and the player's position.
const PAD = { left: 38, right: 12, top: 12, bottom: 28 };

function plotGeometry(canvas) {
  const reply = state.reply;
  const windows = reply.timeline.windows;
  const last = windows[windows.length - 1];
  const duration = Math.max(reply.file.duration_seconds || 0, last ? last.end : 0, 1e-3);
  const w = canvas.clientWidth, h = canvas.clientHeight;
  return {
    duration, w, h,
    x: (t) => PAD.left + (w - PAD.left - PAD.right) * (t / duration),
    y: (p) => PAD.top + (h - PAD.top - PAD.bottom) * (1 - p),
    t: (px) => Math.min(duration, Math.max(0, (px - PAD.left) / (w - PAD.left - PAD.right) * duration)),
  };
}

function drawTimeline() {
  const canvas = $("timeline");
  const reply = state.reply;
  if (!reply) return;
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(canvas.clientWidth * ratio);
  canvas.height = Math.round(canvas.clientHeight * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  const g = plotGeometry(canvas);
  ctx.clearRect(0, 0, g.w, g.h);
  // Axes and grid.
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#667085";
  ctx.strokeStyle = "#eaecf0";
  ctx.lineWidth = 1;
  for (const p of [0, 0.25, 0.5, 0.75, 1]) {
    ctx.beginPath(); ctx.moveTo(PAD.left, g.y(p)); ctx.lineTo(g.w - PAD.right, g.y(p)); ctx.stroke();
    ctx.fillText(p.toFixed(2), 4, g.y(p) + 4);
  }
  const step = niceStep(g.duration);
  for (let t = 0; t <= g.duration + 1e-9; t += step) {
    ctx.fillText(formatTime(t), g.x(t) - 10, g.h - 8);
  }
  const windows = reply.timeline.windows;
  const labels = reply.timeline.labels;
  const legend = $("legend");
  legend.replaceChildren();
  labels.forEach((label, c) => {
    const item = document.createElement("li");
    const swatch = document.createElement("i");
    swatch.style.background = COLORS[c % COLORS.length];
    item.append(swatch, document.createTextNode(label));
    legend.append(item);
    if (reply.silent || windows.length === 0) return;
    ctx.strokeStyle = COLORS[c % COLORS.length];
    ctx.fillStyle = COLORS[c % COLORS.length];
    ctx.lineWidth = 2;
    ctx.beginPath();
    windows.forEach((win, i) => {
      const t = Math.min((win.start + win.end) / 2, g.duration);
      const px = g.x(t), py = g.y(win.probabilities[c]);
      if (i === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
    });
    ctx.stroke();
    if (windows.length === 1) {  // one window: a dot, since a line needs two points
      const win = windows[0];
      ctx.beginPath();
      ctx.arc(g.x(Math.min((win.start + win.end) / 2, g.duration)), g.y(win.probabilities[c]), 4, 0, 2 * Math.PI);
      ctx.fill();
    }
  });
  canvas.dataset.windows = String(windows.length);
  canvas.dataset.drawn = "1";
  // The player's position.
  const now = $("player").currentTime || 0;
  ctx.strokeStyle = "#1d2330";
  ctx.lineWidth = 1.5;
  ctx.setLineDash([4, 3]);
  ctx.beginPath(); ctx.moveTo(g.x(now), PAD.top); ctx.lineTo(g.x(now), g.h - PAD.bottom); ctx.stroke();
  ctx.setLineDash([]);
  canvas.dataset.cursor = now.toFixed(3);
}

function niceStep(duration) {
  for (const s of [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600]) if (duration / s <= 8) return s;
  return 1200;
}

function formatTime(t) {
  const m = Math.floor(t / 60), s = t - 60 * m;
  return m ? `${m}:${String(Math.round(s)).padStart(2, "0")}` : `${Math.round(s * 10) / 10}s`;
}

// Recording: MediaRecorder's container (webm/ogg) is decoded by the browser and sent as 16-bit WAV, a format every
// server build decodes.
async function toggleRecording() {
  const button = $("record");
  if (state.recorder) {
    state.recorder.stop();
    return;
  }
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    setStatus("this browser cannot record audio here (a microphone needs https or localhost)", true);
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (e) {
    setStatus("no microphone: " + e.message, true);
    return;
  }
  const chunks = [];
  const recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
  recorder.onstop = async () => {
    stream.getTracks().forEach((t) => t.stop());
    state.recorder = null;
    button.textContent = "● Record from the microphone";
    button.classList.remove("on");
    try {
      const wav = await toWav(new Blob(chunks, { type: recorder.mimeType }));
      predict(wav, `recording-${new Date().toISOString().slice(11, 19).replaceAll(":", "")}.wav`);
    } catch (e) {
      setStatus("could not read the recording: " + e.message, true);
    }
  };
  recorder.start();
  state.recorder = recorder;
  button.textContent = "■ Stop and analyse";
  button.classList.add("on");
  setStatus("recording… press stop when done");
}

async function toWav(blob) {
  const ctx = new (window.AudioContext || window.webkitAudioContext)();
  try {
    const audio = await ctx.decodeAudioData(await blob.arrayBuffer());
    const n = audio.length, channels = audio.numberOfChannels, rate = audio.sampleRate;
    const mono = new Float32Array(n);
    for (let c = 0; c < channels; c++) {
      const data = audio.getChannelData(c);
      for (let i = 0; i < n; i++) mono[i] += data[i] / channels;
    }
    const buf = new DataView(new ArrayBuffer(44 + 2 * n));
    const text = (o, s) => { for (let i = 0; i < s.length; i++) buf.setUint8(o + i, s.charCodeAt(i)); };
    text(0, "RIFF"); buf.setUint32(4, 36 + 2 * n, true); text(8, "WAVE"); text(12, "fmt ");
    buf.setUint32(16, 16, true); buf.setUint16(20, 1, true); buf.setUint16(22, 1, true);
    buf.setUint32(24, rate, true); buf.setUint32(28, 2 * rate, true); buf.setUint16(32, 2, true);
    buf.setUint16(34, 16, true); text(36, "data"); buf.setUint32(40, 2 * n, true);
    for (let i = 0; i < n; i++) {
      const s = Math.max(-1, Math.min(1, mono[i]));
      buf.setInt16(44 + 2 * i, s < 0 ? s * 0x8000 : s * 0x7fff, true);
    }
    return new Blob([buf], { type: "audio/wav" });
  } finally {
    ctx.close();
  }
}

function wire() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => {
    const f = e.target.files[0];
    if (f) predict(f, f.name);
  });
  ["dragenter", "dragover"].forEach((ev) => drop.addEventListener(ev, (e) => {
    e.preventDefault(); drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((ev) => drop.addEventListener(ev, (e) => {
    e.preventDefault(); drop.classList.remove("over");
  }));
  drop.addEventListener("drop", (e) => {
    const f = e.dataTransfer.files[0];
    if (f) predict(f, f.name);
  });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("file").click(); });
  $("record").addEventListener("click", toggleRecording);
  const player = $("player");
  let frame = 0;
  const tick = () => { drawTimeline(); frame = player.paused ? 0 : requestAnimationFrame(tick); };
  player.addEventListener("play", () => { if (!frame) frame = requestAnimationFrame(tick); });
  ["timeupdate", "seeked", "pause"].forEach((ev) => player.addEventListener(ev, drawTimeline));
  $("timeline").addEventListener("click", (e) => {
    if (!state.reply) return;
    const rect = e.target.getBoundingClientRect();
    player.currentTime = plotGeometry(e.target).t(e.clientX - rect.left);
    drawTimeline();
  });
  window.addEventListener("resize", drawTimeline);
}

wire();
loadModel();
