"use strict";
// The collections page: declarations and counts, uploads, live ingest progress.
(() => {
  const { api, el, toast, date, when } = FS;
  const list = document.getElementById("collection-list");
  const template = document.getElementById("collection-card");
  const jobsBody = document.querySelector("#jobs tbody");
  const canWrite = list.dataset.canWrite === "yes";
  const canIngest = list.dataset.canIngest === "yes";
  const streams = new Map();

  async function loadCollections() {
    let collections;
    try {
      collections = await api("GET", "/api/collections");
    } catch (error) {
      list.replaceChildren(el("p", { class: "error", text: error.message }));
      return;
    }
    if (!collections.length) {
      list.replaceChildren(el("p", { class: "empty", text: canWrite
        ? "No collections yet: declare the first one above."
        : "No collections yet; an administrator declares them." }));
      return;
    }
    list.replaceChildren(...collections.map(cardFor));
  }

  function cardFor(c) {
    const card = template.content.firstElementChild.cloneNode(true);
    card.dataset.name = c.name;
    card.querySelector(".name").textContent = c.name;
    card.querySelector(".retention").textContent = c.retention_days ? `kept ${c.retention_days} days` : "kept until deleted";
    card.querySelector(".source").textContent = c.source;
    card.querySelector(".legal").textContent = c.legal_basis;
    card.querySelector(".created").textContent = date(c.created_at);
    card.querySelector(".images").textContent = c.images.toLocaleString();
    card.querySelector(".faces").textContent = c.faces.toLocaleString();
    card.querySelector(".errors").textContent = c.errors.toLocaleString();
    if (canIngest) {
      const form = card.querySelector(".upload");
      const files = form.querySelector("input[type=file]");
      const button = form.querySelector("button");
      const label = form.querySelector(".filepick span");
      form.hidden = false;
      files.addEventListener("change", () => {
        button.disabled = !files.files.length;
        label.textContent = files.files.length ? `${files.files.length} photos chosen` : "Add photos…";
      });
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        const body = new FormData();
        [...files.files].forEach((f) => body.append("files", f, f.name));
        button.disabled = true;
        button.textContent = "Uploading…";
        try {
          const job = await api("POST", `/api/collections/${encodeURIComponent(c.name)}/uploads`, body);
          toast(`job #${job.id} queued: ${files.files.length} files`);
          form.reset();
          label.textContent = "Add photos…";
          await loadJobs();
        } catch (error) {
          toast(error.message, "error");
        } finally {
          button.textContent = "Upload & ingest";
          button.disabled = !files.files.length;
        }
      });
    }
    if (canWrite) {
      card.querySelector(".write-actions").hidden = false;
      card.querySelector(".retention-edit").addEventListener("click", async () => {
        const answer = prompt(`Keep ${c.name} for how many days? (empty: until deleted)`, c.retention_days || "");
        if (answer === null) return;
        try {
          await api("PATCH", `/api/collections/${encodeURIComponent(c.name)}`, { retention_days: answer.trim() ? Number(answer) : null });
          toast("retention changed");
          loadCollections();
        } catch (error) { toast(error.message, "error"); }
      });
      card.querySelector(".delete").addEventListener("click", async () => {
        if (!confirm(`Delete ${c.name} with its ${c.images} images and ${c.faces} faces? This cannot be undone.`)) return;
        try {
          await api("DELETE", `/api/collections/${encodeURIComponent(c.name)}`);
          toast(`${c.name} deleted`);
          loadCollections();
        } catch (error) { toast(error.message, "error"); }
      });
    }
    return card;
  }

  function progressCell(job) {
    const pct = job.total ? Math.round(100 * job.done / job.total) : (job.status === "finished" ? 100 : 0);
    const fill = el("span", { class: "bar-fill" });
    fill.style.width = pct + "%";
    return el("td", { class: "progress" },
      el("span", { class: "bar" + (job.status === "running" ? " live" : "") }, fill),
      el("small", { text: `${job.done.toLocaleString()} / ${job.total.toLocaleString()}` }),
      // Videos: seconds of video stored of those the run has to analyse.
      job.video_seconds_total ? el("small", { class: "video-progress",
        text: ` · video ${Math.round(job.video_seconds)} / ${Math.round(job.video_seconds_total)} s` }) : null);
  }

  function rowFor(job) {
    const cancel = canIngest && (job.status === "queued" || job.status === "running")
      ? el("button", { type: "button", class: "link", text: "cancel", onclick: async () => {
          try { await api("DELETE", `/api/jobs/${job.id}`); toast(`job #${job.id} cancelling`); loadJobs(); }
          catch (error) { toast(error.message, "error"); }
        } })
      : null;
    return el("tr", { dataset: { job: job.id }, title: job.message || "" },
      el("td", { text: job.id }),
      el("td", { text: job.collection }),
      el("td", {}, el("span", { class: `status-pill ${job.status}`, text: job.status })),
      progressCell(job),
      el("td", { text: job.faces.toLocaleString() }),
      el("td", { text: job.errors.toLocaleString() }),
      el("td", { text: job.rate ? `${job.rate.toFixed(1)}/s` : "" }),
      el("td", { text: when(job.started_at) }),
      el("td", {}, cancel));
  }

  function follow(job) {
    if (streams.has(job.id)) return;
    const source = new EventSource(`/api/jobs/${job.id}/events`);
    streams.set(job.id, source);
    source.addEventListener("progress", (e) => {
      const updated = JSON.parse(e.data);
      const row = jobsBody.querySelector(`tr[data-job="${updated.id}"]`);
      if (row) row.replaceWith(rowFor(updated));
    });
    source.addEventListener("end", () => {
      source.close();
      streams.delete(job.id);
      loadCollections();
    });
    source.onerror = () => { source.close(); streams.delete(job.id); };
  }

  async function loadJobs() {
    let jobs;
    try { jobs = await api("GET", "/api/jobs?limit=20"); }
    catch (error) { jobsBody.replaceChildren(el("tr", {}, el("td", { colspan: 9, class: "error", text: error.message }))); return; }
    if (!jobs.length) {
      jobsBody.replaceChildren(el("tr", {}, el("td", { colspan: 9, class: "muted", text: "No ingest jobs yet." })));
      return;
    }
    jobsBody.replaceChildren(...jobs.map(rowFor));
    jobs.filter((j) => j.status === "queued" || j.status === "running").forEach(follow);
  }

  const create = document.getElementById("create-collection");
  if (create) {
    create.addEventListener("submit", async (e) => {
      e.preventDefault();
      const data = Object.fromEntries(new FormData(create));
      data.retention_days = data.retention_days ? Number(data.retention_days) : null;
      try {
        await api("POST", "/api/collections", data);
        toast(`${data.name} declared`);
        create.reset();
        loadCollections();
      } catch (error) { toast(error.message, "error"); }
    });
  }
  loadCollections();
  loadJobs();
})();
