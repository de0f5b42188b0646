// The camera and microphone pickers (the lobby's and the call's Devices panel): filled
// from the browser's device list, the current device selected.

import { $$ } from "./views.js";

export function fillDeviceSelect(select, devices, currentId, fallbackLabel) {
  select.textContent = "";
  if (!devices.length) {
    const o = document.createElement("option");
    o.textContent = `No ${fallbackLabel}`;
    o.value = "";
    select.append(o);
    select.disabled = true;
    return;
  }
  select.disabled = false;
  devices.forEach((d, i) => {
    const o = document.createElement("option");
    o.value = d.deviceId;
    o.textContent = d.label || `${fallbackLabel} ${i + 1}`;
    if (d.deviceId === currentId) o.selected = true;
    select.append(o);
  });
}

/** Refill every camera and microphone picker on the page from `media`. */
export async function refreshDevices(media) {
  if (!media) return;
  const { audio, video } = await media.devices();
  for (const sel of $$(".cam-select")) fillDeviceSelect(sel, video, media.videoDeviceId, "camera");
  for (const sel of $$(".mic-select")) fillDeviceSelect(sel, audio, media.audioDeviceId, "microphone");
}

/** Switching a picker switches the device, for the lobby's preview or for everyone in the call. */
export function initDevicePickers(app, { onError }) {
  const change = async (kind, deviceId) => {
    if (!deviceId || !app.media) return;
    const ok = app.call ? await app.call.switchDevice(kind, deviceId) : !!(await app.media.useDevice(kind, deviceId));
    if (!ok) onError(kind);
    refreshDevices(app.media);
  };
  for (const sel of $$(".cam-select")) sel.addEventListener("change", () => change("video", sel.value));
  for (const sel of $$(".mic-select")) sel.addEventListener("change", () => change("audio", sel.value));
}
