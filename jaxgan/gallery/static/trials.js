// Blind trials: one image at a time, real or generated; the server alone knows which.
"use strict";
let numTrials = 0;
let position = null;   // the trial on screen, or null when done / no name yet
let busy = false;

function show(trials) {
  numTrials = trials.num_trials;
  const answered = new Set(trials.answered);
  position = null;
  for (let p = 0; p < numTrials; p++) {
    if (!answered.has(p)) { position = p; break; }
  }
  const done = position === null;
  document.getElementById("trial").hidden = done;
  document.getElementById("score").hidden = !done;
  if (done) {
    const s = trials.score;
    document.getElementById("score-text").textContent =
      `${s.correct} of ${s.total} right (${Math.round(100 * s.correct / s.total)}%). ` +
      `Generated images you took for real: ${s.generated_judged_real} of ${s.generated}; ` +
      `real images you took for generated: ${s.real_judged_generated} of ${s.real}.`;
    return;
  }
  document.getElementById("trial-progress").textContent =
    `Trial ${answered.size + 1} of ${numTrials}`;
  const image = document.getElementById("trial-image");
  image.src = `/trial/${position}.png?rater=${encodeURIComponent(raterName())}`;
}

async function load(name) {
  if (!name) {
    showStatus("Type your name first (top right): your trials and score are your own.", true);
    document.getElementById("trial").hidden = true;
    document.getElementById("rater").focus();
    return;
  }
  showStatus("", false);
  show(await getJSON(`/api/trials?rater=${encodeURIComponent(name)}`));
}

async function answer(said) {
  if (position === null || busy) return;
  busy = true;
  try {
    show(await postJSON("/api/trial", {rater: raterName(), position, answer: said, nonce: nonce()}));
    showStatus("", false);
  } catch (error) {
    showStatus(`Not saved: ${error.message}`, true);
  } finally {
    busy = false;
  }
}

document.addEventListener("keydown", (event) => {
  if (typing(event) || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.key === "r") answer("real");
  else if (event.key === "g") answer("generated");
  else return;
  event.preventDefault();
});

setupRater((name) => load(name).catch((error) => showStatus(error.message, true)));
document.getElementById("say-real").addEventListener("click", () => answer("real"));
document.getElementById("say-generated").addEventListener("click", () => answer("generated"));
load(raterName()).catch((error) => showStatus(`Cannot load the trials: ${error.message}`, true));
