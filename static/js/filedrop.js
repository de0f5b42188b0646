// Files dropped anywhere on the call's stage are sent to everyone; a file dropped beside
// it never navigates away from the call. The overlay says what a drop will do.

export function initFileDrop({ stage, overlay, onFiles }) {
  let depth = 0;
  const hasFiles = (ev) => ev.dataTransfer && [...ev.dataTransfer.types].includes("Files");
  stage.addEventListener("dragenter", (ev) => {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    depth += 1;
    overlay.classList.add("show");
  });
  stage.addEventListener("dragover", (ev) => {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    ev.dataTransfer.dropEffect = "copy";
  });
  stage.addEventListener("dragleave", (ev) => {
    if (!hasFiles(ev)) return;
    depth = Math.max(0, depth - 1);
    if (depth === 0) overlay.classList.remove("show");
  });
  stage.addEventListener("drop", (ev) => {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    depth = 0;
    overlay.classList.remove("show");
    const files = [...ev.dataTransfer.files];
    if (files.length) onFiles(files);
  });
  // Never let a file dropped beside the stage navigate away from the call.
  window.addEventListener("dragover", (ev) => { if (hasFiles(ev)) ev.preventDefault(); });
  window.addEventListener("drop", (ev) => { if (hasFiles(ev)) ev.preventDefault(); });
}
