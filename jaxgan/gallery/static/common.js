// Shared by the rating and trial pages: the rater's name (kept in this browser) and requests.
"use strict";
const RATER_KEY = "jaxgan.gallery.rater";

function raterName() {
  return (localStorage.getItem(RATER_KEY) || "").trim();
}

// Wire the name box: filled from localStorage, saved on change; onChange(name) on a new name.
function setupRater(onChange) {
  const box = document.getElementById("rater");
  box.value = raterName();
  box.addEventListener("change", () => {
    const name = box.value.trim();
    localStorage.setItem(RATER_KEY, name);
    onChange(name);
  });
  box.addEventListener("keydown", (event) => {
    if (event.key === "Enter") box.blur();
  });
  return box;
}

function showStatus(text, isError) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = isError ? "error" : "";
}

// A fresh id per judgement: the server stores a retried request once.
function nonce() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function getJSON(url) {
  const response = await fetch(url, {cache: "no-store"});
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

// POST a JSON body; a network failure is retried once with the same body (same nonce).
async function postJSON(url, body) {
  const options = {method: "POST", headers: {"Content-Type": "application/json"},
                   body: JSON.stringify(body)};
  let response;
  try {
    response = await fetch(url, options);
  } catch (error) {
    response = await fetch(url, options);
  }
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error || response.statusText);
  return answer;
}

function typing(event) {
  const tag = event.target.tagName;
  return tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA";
}
