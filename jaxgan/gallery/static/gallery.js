// The rating page: cards by class, rated with the keyboard or the mouse.
"use strict";
let images = [];          // [{id, seed, class_index, class_name}] in page order
let state = {};           // image id -> {rating, favourite, copied} for this rater
let selected = 0;
let step = 0;
// Judgements made while the rater's state is being fetched: laid over the fetched state, so a
// rating typed just after the name never vanishes when the (older) answer arrives.
let madeWhileLoading = null;  // image id -> {kind: value}
let loadGeneration = 0;

// "impressionism", or "class 7" where class names are bare numbers (digits)
function className(image) {
  return /^\d+$/.test(image.class_name) ? `class ${image.class_name}` : image.class_name;
}

function card(i) {
  return document.querySelector(`.card[data-index="${i}"]`);
}

function render(summary) {
  const main = document.getElementById("gallery");
  main.textContent = "";
  let section = null;
  let lastClass;
  images.forEach((image, i) => {
    if (section === null || image.class_name !== lastClass) {
      section = document.createElement("section");
      if (image.class_name !== null) {
        const title = document.createElement("h2");
        title.textContent = image.class_name;
        section.appendChild(title);
      }
      const grid = document.createElement("div");
      grid.className = "grid";
      section.appendChild(grid);
      main.appendChild(section);
      lastClass = image.class_name;
    }
    const figure = document.createElement("figure");
    figure.className = "card";
    figure.dataset.index = i;
    figure.dataset.id = image.id;
    const img = document.createElement("img");
    img.src = `/img/${image.id}.png`;
    img.alt = `seed ${image.seed}`;
    img.width = img.height = summary.display_size;
    figure.appendChild(img);
    const caption = document.createElement("figcaption");
    const cls = image.class_name === null ? "" : ` · ${className(image)}`;
    for (const text of [`seed ${image.seed}${cls}`, `step ${step}`]) {
      const line = document.createElement("span");
      line.textContent = text;
      caption.appendChild(line);
    }
    figure.appendChild(caption);
    const buttons = document.createElement("div");
    buttons.className = "buttons";
    for (let value = 1; value <= 5; value++) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "rate";
      button.dataset.value = value;
      button.textContent = value;
      button.title = `rate ${value} (key ${value})`;
      button.addEventListener("click", () => { select(i); rate(i, value); });
      buttons.appendChild(button);
    }
    figure.appendChild(buttons);
    const flags = document.createElement("div");
    flags.className = "buttons flags";
    for (const [kind, label, title] of [["favourite", "♥ favourite", "favourite (f)"],
                                        ["copied", "looks copied", "looks copied from the training data (c)"]]) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = `flag ${kind}`;
      button.textContent = label;
      button.title = title;
      button.addEventListener("click", () => { select(i); toggle(i, kind); });
      flags.appendChild(button);
    }
    figure.appendChild(flags);
    img.addEventListener("click", () => select(i));
    section.querySelector(".grid").appendChild(figure);
  });
  refreshAll();
  select(0, false);
}

function refresh(i) {
  const element = card(i);
  const judged = state[images[i].id] || {};
  element.querySelectorAll(".rate").forEach((button) => {
    button.classList.toggle("on", Number(button.dataset.value) === judged.rating);
  });
  element.querySelector(".favourite").classList.toggle("on", judged.favourite === 1);
  element.querySelector(".copied").classList.toggle("on", judged.copied === 1);
  element.classList.toggle("rated", judged.rating !== undefined);
}

function refreshAll() {
  images.forEach((_, i) => refresh(i));
  const rated = images.filter((image) => (state[image.id] || {}).rating !== undefined).length;
  document.getElementById("progress").textContent = `Rated ${rated} of ${images.length}.`;
  const favourites = images.filter((image) => (state[image.id] || {}).favourite === 1);
  for (const id of ["walk-a", "walk-b"]) {
    const select = document.getElementById(id);
    const previous = select.value;
    select.textContent = "";
    for (const image of favourites) {
      const option = document.createElement("option");
      option.value = image.id;
      option.textContent = `seed ${image.seed}${image.class_name === null ? "" : " · " + className(image)}`;
      select.appendChild(option);
    }
    if (favourites.some((image) => image.id === previous)) select.value = previous;
  }
  if (favourites.length > 1 && document.getElementById("walk-b").selectedIndex === 0) {
    document.getElementById("walk-b").selectedIndex = 1;
  }
}

function select(i, scroll = true) {
  if (i < 0 || i >= images.length) return;
  const old = card(selected);
  if (old) old.classList.remove("selected");
  selected = i;
  card(i).classList.add("selected");
  if (scroll) card(i).scrollIntoView({block: "nearest"});
}

function needRater() {
  const name = raterName();
  if (!name) {
    showStatus("Type your name first (top right): it keeps your ratings apart from others'.", true);
    document.getElementById("rater").focus();
  }
  return name;
}

// Shown at once (fast typing never waits for the server), undone if the server refuses.
async function judge(i, kind, value) {
  const rater = needRater();
  if (!rater) return false;
  const image = images[i];
  const entry = state[image.id] || (state[image.id] = {});
  const before = entry[kind];
  entry[kind] = kind === "rating" ? value : Number(value);
  if (madeWhileLoading) (madeWhileLoading[image.id] ||= {})[kind] = entry[kind];
  refreshAll();
  try {
    await postJSON("/api/judge", {rater, image: image.id, kind, value, nonce: nonce()});
  } catch (error) {
    // `state` may have been replaced by a load meanwhile: undo in whatever holds it now
    const now = state[image.id] || (state[image.id] = {});
    if (before === undefined) delete now[kind]; else now[kind] = before;
    if (madeWhileLoading && madeWhileLoading[image.id]) delete madeWhileLoading[image.id][kind];
    refreshAll();
    showStatus(`Not saved: ${error.message}`, true);
    return false;
  }
  showStatus(`Saved: ${kind} of seed ${image.seed}.`, false);
  return true;
}

function rate(i, value) {
  if (!needRater()) return;
  if (i === selected) select(Math.min(i + 1, images.length - 1));
  judge(i, "rating", value);
}

function toggle(i, kind) {
  const on = (state[images[i].id] || {})[kind] === 1;
  judge(i, kind, !on);
}

// The card visually above or below the selected one (rows wrap with the window's width).
function vertical(direction) {
  const here = card(selected).getBoundingClientRect();
  let best = selected, bestKey = null;
  images.forEach((_, i) => {
    const box = card(i).getBoundingClientRect();
    const rowGap = direction * (box.top - here.top);
    if (rowGap < 5) return;
    const key = [rowGap, Math.abs(box.left - here.left)];
    if (bestKey === null || key[0] < bestKey[0] - 5 ||
        (Math.abs(key[0] - bestKey[0]) <= 5 && key[1] < bestKey[1])) {
      best = i;
      bestKey = key;
    }
  });
  return best;
}

document.addEventListener("keydown", (event) => {
  if (typing(event) || event.ctrlKey || event.metaKey || event.altKey) return;
  if (!images.length) return;
  if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
    select(Math.min(images.length - 1, Math.max(0, selected + (event.key === "ArrowRight" ? 1 : -1))));
  } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    select(vertical(event.key === "ArrowDown" ? 1 : -1));
  } else if (/^[1-5]$/.test(event.key)) {
    rate(selected, Number(event.key));
  } else if (event.key === "f") {
    toggle(selected, "favourite");
  } else if (event.key === "c") {
    toggle(selected, "copied");
  } else {
    return;
  }
  event.preventDefault();
});

async function loadState(name) {
  const generation = ++loadGeneration;
  madeWhileLoading = {};
  const fetched = name ? await getJSON(`/api/state?rater=${encodeURIComponent(name)}`) : {};
  if (generation !== loadGeneration) return;  // a newer name's load supersedes this one
  for (const [id, kinds] of Object.entries(madeWhileLoading)) {
    Object.assign(fetched[id] || (fetched[id] = {}), kinds);
  }
  madeWhileLoading = null;
  state = fetched;
  refreshAll();
}

async function make(url, body) {
  showStatus("Drawing ...", false);
  try {
    const made = await postJSON(url, body);
    document.getElementById("made-image").src = made.url;
    document.getElementById("made-path").textContent = `Saved ${made.path}`;
    showStatus("Done.", false);
  } catch (error) {
    showStatus(`Not made: ${error.message}`, true);
  }
}

async function start() {
  const summary = await getJSON("/api/set");
  images = summary.images;
  step = summary.step;
  render(summary);
  setupRater((name) => loadState(name).catch((error) => showStatus(error.message, true)));
  await loadState(raterName());
  document.getElementById("redraw").addEventListener("click", () => make("/api/redraw", {
    image: images[selected].id, truncation: Number(document.getElementById("truncation").value)}));
  document.getElementById("interpolate").addEventListener("click", () => {
    const a = document.getElementById("walk-a").value, b = document.getElementById("walk-b").value;
    if (!a || !b) { showStatus("Mark two favourites (f) to walk between them.", true); return; }
    make("/api/interpolate", {a, b, frames: Number(document.getElementById("frames").value),
                              truncation: Number(document.getElementById("truncation").value)});
  });
  if (!raterName()) needRater();
}

start().catch((error) => showStatus(`Cannot load the gallery: ${error.message}`, true));
