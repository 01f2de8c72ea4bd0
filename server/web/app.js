// The retrace web page: pick a collection, query by an image (drop, paste or choose), text or
// a prompt, and see each hit with the score parts that put it there. Plain ES module, no
// dependencies: it talks to the server's HTTP/JSON API (/v1/openapi.json) and nothing else.
const $ = (id) => document.getElementById(id);
const state = { image: null, collections: [] };

// A server error as a sentence a person can act on.
function sentence(what, status, message) {
  const detail = message ? ` The server said: ${message.replace(/\.?$/, '.')}` : '';
  switch (status) {
    case 0: return `Cannot reach the server to ${what}. Is it running?`;
    case 401: return `The server needs a token to ${what}; enter it above.${detail}`;
    case 403: return `This token may not ${what}.${detail}`;
    case 404: return `Could not ${what}: it was not found.${detail}`;
    case 429: return `The server is busy and could not ${what}; try again in a moment.${detail}`;
    case 503: return `The server is not ready to ${what} yet; try again shortly.${detail}`;
    case 504: return `The server took too long to ${what}.${detail}`;
    default:
      if (status >= 400 && status < 500) return `Could not ${what}.${detail}`;
      return `The server failed to ${what} (HTTP ${status}).${detail}`;
  }
}

// fetchThumbnail: an item's JPEG as a Blob (with the token, which an <img> could not send).
async function fetchThumbnail(collection, id) {
  const headers = {};
  const token = $('token').value.trim();
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(`/v1/collections/${encodeURIComponent(collection)}/thumbnail` +
    `?id=${encodeURIComponent(id)}`, { headers });
  if (!response.ok) throw new Error(sentence(`show “${id}”`, response.status));
  return response.blob();
}

async function api(what, path, options = {}) {
  const headers = Object.assign({}, options.headers);
  const token = $('token').value.trim();
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, Object.assign({}, options, { headers }));
  } catch {
    throw new Error(sentence(what, 0));
  }
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  if (!response.ok) {
    throw new Error(sentence(what, response.status, body && body.error && body.error.message));
  }
  return body;
}

function showError(message) {
  $('error').textContent = message;
  $('error').hidden = !message;
}

async function loadHealth() {
  try {
    const response = await fetch('/v1/health');
    const body = await response.json();
    $('health').textContent = body.status === 'SERVING' ? 'ready' : 'starting…';
  } catch {
    $('health').textContent = 'unreachable';
  }
}

async function loadCollections() {
  const body = await api('list the collections', '/v1/collections');
  state.collections = body.collections || [];
  const list = $('collections');
  const select = $('collection');
  const chosen = select.value;
  list.replaceChildren();
  select.replaceChildren();
  for (const c of state.collections) {
    const item = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.dataset.name = c.name;
    button.append(c.name);
    const count = document.createElement('span');
    count.className = 'count';
    count.textContent = Number(c.itemCount).toLocaleString();
    count.setAttribute('aria-label', `${c.itemCount} items`);
    button.append(count);
    button.addEventListener('click', () => { select.value = c.name; markCurrent(); });
    item.append(button);
    list.append(item);
    select.append(new Option(c.name, c.name));
  }
  if (chosen && state.collections.some((c) => c.name === chosen)) select.value = chosen;
  if (!state.collections.length) {
    const item = document.createElement('li');
    item.textContent = 'No collections yet: index some images with the retrace CLI or the API.';
    list.append(item);
  }
  markCurrent();
}

function markCurrent() {
  for (const b of $('collections').querySelectorAll('button')) {
    b.setAttribute('aria-current', String(b.dataset.name === $('collection').value));
  }
}

function setImage(file) {
  if (!file) return;
  state.image = file;
  const preview = $('query-preview');
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  preview.alt = `query image ${file.name || 'pasted'}`;
  preview.hidden = false;
  $('drop-text').textContent = `${file.name || 'pasted image'} — drop another to replace it`;
  $('text').value = '';
}

function clearQuery() {
  state.image = null;
  $('query-preview').hidden = true;
  $('drop-text').textContent = 'Drop or paste an image here, or press to choose a file';
  $('text').value = '';
  $('query-caption').value = '';
  $('hits').replaceChildren();
  $('summary').textContent = '';
  showError('');
}

function bar(label, value, fraction, title) {
  const name = document.createElement('span');
  name.textContent = label;
  name.title = title;
  const track = document.createElement('span');
  track.className = 'bar';
  const fill = document.createElement('span');
  fill.style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
  track.append(fill);
  const number = document.createElement('span');
  number.className = 'value';
  number.textContent = value;
  return [name, track, number];
}

const rankFraction = (rank) => (rank < 0 ? 0 : 1 / (1 + rank));

function hitCard(hit, index, mode, best, collection) {
  const card = document.createElement('li');
  card.className = 'hit';
  card.dataset.id = hit.id;
  const thumbnails = state.collections.find((c) => c.name === collection)?.thumbnailSide > 0;
  if (thumbnails) {
    const picture = document.createElement('img');
    picture.className = 'thumbnail';
    picture.alt = hit.caption ? `${hit.id}: ${hit.caption}` : hit.id;
    fetchThumbnail(collection, hit.id).then(
      (blob) => { picture.src = URL.createObjectURL(blob); },
      () => { picture.remove(); });
    card.append(picture);
  }
  const title = document.createElement('h3');
  title.textContent = `${index + 1}. ${hit.id}`;
  const caption = document.createElement('p');
  caption.className = 'caption';
  caption.textContent = hit.caption;
  const parts = document.createElement('div');
  parts.className = 'parts';
  const p = hit.provenance;
  if (mode !== 'CAPTION_MATCH' && p && p.captionRank !== undefined) {
    card.dataset.s = p.baseScore;
    card.dataset.p = p.captionRank;
    card.dataset.pp = p.imageRank;
    card.dataset.sp = p.score;
    parts.append(
      ...bar('S', Number(p.baseScore).toFixed(4), p.baseScore, 'image-space similarity'),
      ...bar('P', p.captionRank < 0 ? '–' : String(p.captionRank), rankFraction(p.captionRank),
        'rank of its caption for the query image'),
      ...bar("P′", p.imageRank < 0 ? '–' : String(p.imageRank), rankFraction(p.imageRank),
        'rank of its image for the query caption'),
      ...bar("S′", Number(p.score).toFixed(4), best > 0 ? p.score / best : 0,
        'S + w1·e^(−βP) + w2·e^(−βP′)'));
  }
  if (mode === 'HYBRID' && hit.hybrid) {
    const h = hit.hybrid;
    parts.append(
      ...bar('caption rank', h.captionMatchRank < 0 ? '–' : String(h.captionMatchRank),
        rankFraction(h.captionMatchRank), 'rank in Caption-Matching'),
      ...bar('provenance rank', h.provenanceRank < 0 ? '–' : String(h.provenanceRank),
        rankFraction(h.provenanceRank), 'rank in the provenance ranking'));
  }
  if (mode !== 'PROVENANCE') {  // in provenance mode the score is S′
    parts.append(...bar('score', Number(hit.score).toFixed(4), best > 0 ? hit.score / best : 0,
      'the ranking score'));
  }
  card.dataset.score = hit.score;
  const details = document.createElement('details');
  const summary = document.createElement('summary');
  summary.textContent = 'Details';
  const list = document.createElement('dl');
  const attributes = Object.entries(hit.attributes || {}).sort();
  for (const [key, value] of attributes) {
    const dt = document.createElement('dt');
    dt.textContent = key;
    const dd = document.createElement('dd');
    if (key === 'uri' && /^https?:\/\//i.test(value)) {
      const link = document.createElement('a');
      link.href = value;
      link.rel = 'noopener noreferrer';
      link.target = '_blank';
      link.textContent = value;
      dd.append(link);
    } else {
      dd.textContent = value;
    }
    list.append(dt, dd);
  }
  if (!attributes.length) list.textContent = 'No attributes.';
  details.append(summary, list);
  card.append(title, caption, parts, details);
  if (thumbnails) {
    const again = document.createElement('button');
    again.type = 'button';
    again.className = 'again';
    again.textContent = 'Search with this image';
    again.addEventListener('click', async () => {
      try {
        const blob = await fetchThumbnail(collection, hit.id);
        setImage(new File([blob], `${hit.id}.jpg`, { type: 'image/jpeg' }));
        $('query').requestSubmit();
      } catch (error) {
        showError(error.message);
      }
    });
    card.append(again);
  }
  return card;
}

async function search(event) {
  event.preventDefault();
  showError('');
  const collection = $('collection').value;
  if (!collection) return showError('Choose a collection first (none exist yet?).');
  const mode = $('mode').value;
  const topK = Number($('top-k').value) || 12;
  const request = { mode, topK };
  const queryCaption = $('query-caption').value.trim();
  if (queryCaption) request.queryCaption = queryCaption;
  const text = $('text').value.trim();
  const path = `/v1/collections/${encodeURIComponent(collection)}/search`;
  let options;
  if (state.image) {
    const form = new FormData();
    form.append('image', state.image, state.image.name || 'query');
    form.append('request', JSON.stringify(request));
    options = { method: 'POST', body: form };
  } else if (text) {
    request.text = text;
    options = { method: 'POST', body: JSON.stringify(request),
      headers: { 'Content-Type': 'application/json' } };
  } else {
    return showError('Give a query: drop, paste or choose an image, or type some text.');
  }
  $('search').disabled = true;
  $('summary').textContent = 'Searching…';
  try {
    const started = performance.now();
    const body = await api(`search “${collection}”`, path, options);
    const hits = body.hits || [];
    const best = hits.reduce((m, h) => Math.max(m, h.score), 0);
    $('hits').replaceChildren(...hits.map((h, i) => hitCard(h, i, mode, best, collection)));
    const caption = body.queryCaption ? ` Query caption: “${body.queryCaption}”.` : '';
    $('summary').textContent = `${hits.length} hits in ${Math.round(performance.now() - started)} ms` +
      `${body.stale ? ' (the server cannot reach its store: these may miss recent writes)' : ''}.` +
      caption;
  } catch (error) {
    $('hits').replaceChildren();
    $('summary').textContent = '';
    showError(error.message);
  } finally {
    $('search').disabled = false;
  }
}

function wire() {
  const drop = $('drop');
  drop.addEventListener('click', () => $('file').click());
  drop.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); $('file').click(); }
  });
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    setImage(e.dataTransfer.files[0]);
  });
  $('file').addEventListener('change', (e) => setImage(e.target.files[0]));
  document.addEventListener('paste', (e) => {
    const file = [...(e.clipboardData?.files || [])].find((f) => f.type.startsWith('image/'));
    if (file) setImage(file);
  });
  $('text').addEventListener('input', () => {
    if ($('text').value && state.image) { state.image = null; $('query-preview').hidden = true; }
  });
  $('collection').addEventListener('change', markCurrent);
  $('query').addEventListener('submit', search);
  $('clear').addEventListener('click', clearQuery);
  $('token').value = sessionStorage.getItem('retrace-token') || '';
  $('token').addEventListener('change', () => {
    sessionStorage.setItem('retrace-token', $('token').value.trim());
    loadCollections().then(() => showError(''), (e) => showError(e.message));
  });
}

wire();
loadHealth();
loadCollections().catch((e) => showError(e.message));
