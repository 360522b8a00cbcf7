/*
 * The browser's witness of the access log.
 *
 * The activity page loads this file. It keeps, in this browser's localStorage (one record per
 * log origin), the last signed checkpoint of the access log it saw: origin, tree size, root
 * hash, the signed note and the log's verifier key, pinned the first time it is seen. On the
 * next visit it fetches the latest checkpoint (GET /api/v1/log/checkpoint) and the key
 * (GET /api/v1/log/key), checks the checkpoint's Ed25519 signature where the browser's Web
 * Crypto has Ed25519, fetches the RFC 9162 consistency proof from the kept size to the new one
 * (GET /api/v1/log/proof/consistency) and verifies it (RFC 9162 section 2.1.4.2, the algorithm
 * of infomediary/tlog/merkle.py's verify_consistency), and only then keeps the new checkpoint.
 * Anything that fails is a plain warning on the page and nothing new is kept, so the
 * evidence stays in the browser. A record kept only in the customer's browser is what the
 * server cannot rewrite.
 *
 * Formats: docs/LOG_FORMAT.md (C2SP signed-note and tlog-checkpoint, the vkey form).
 */
(function () {
  "use strict";

  var PREFIX = "infomediary.log-witness/";
  var LAST_ORIGIN = "infomediary.log-witness.origin";
  var DASH = "\u2014 ";
  var HASH_SIZE = 32;
  var subtle = window.crypto && window.crypto.subtle;

  function ProofError(message) {
    this.name = "ProofError";
    this.message = message;
  }
  ProofError.prototype = Object.create(Error.prototype);

  function NoteError(message) {
    this.name = "NoteError";
    this.message = message;
  }
  NoteError.prototype = Object.create(Error.prototype);

  // -- bytes ---------------------------------------------------------------------------------

  function fromBase64(text) {
    if (typeof text !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4) {
      throw new NoteError("not base64");
    }
    var binary = atob(text);
    var out = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) {
      out[i] = binary.charCodeAt(i);
    }
    return out;
  }

  function toBase64(bytes) {
    var binary = "";
    for (var i = 0; i < bytes.length; i++) {
      binary += String.fromCharCode(bytes[i]);
    }
    return btoa(binary);
  }

  function toHex(bytes) {
    return Array.prototype.map
      .call(bytes, function (b) {
        return (b < 16 ? "0" : "") + b.toString(16);
      })
      .join("");
  }

  function equal(a, b) {
    if (a.length !== b.length) {
      return false;
    }
    var diff = 0;
    for (var i = 0; i < a.length; i++) {
      diff |= a[i] ^ b[i];
    }
    return diff === 0;
  }

  function concat(parts) {
    var length = parts.reduce(function (sum, part) {
      return sum + part.length;
    }, 0);
    var out = new Uint8Array(length);
    var at = 0;
    parts.forEach(function (part) {
      out.set(part, at);
      at += part.length;
    });
    return out;
  }

  async function sha256(parts) {
    return new Uint8Array(await subtle.digest("SHA-256", concat(parts)));
  }

  // RFC 9162 section 2.1.1: an interior node is SHA-256(0x01 || left || right).
  function nodeHash(left, right) {
    return sha256([Uint8Array.of(1), left, right]);
  }

  function size(value) {
    if (typeof value === "bigint") {
      return value;
    }
    if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) {
      return BigInt(value);
    }
    if (typeof value === "string" && /^(0|[1-9][0-9]{0,19})$/.test(value)) {
      return BigInt(value);
    }
    throw new ProofError("a tree size is not a whole number");
  }

  // -- RFC 9162 section 2.1.4.2 --------------------------------------------------------------

  /*
   * Resolve if the tree of `second` leaves with root `secondRoot` extends the tree of `first`
   * leaves with root `firstRoot`; reject with a ProofError otherwise. Sizes are BigInts (or
   * whole numbers), hashes Uint8Arrays. As in the server's verifier: a proof from the empty
   * tree proves nothing and is refused; equal sizes need equal roots and an empty proof.
   */
  async function verifyConsistency(first, second, firstRoot, secondRoot, proof) {
    var m = size(first);
    var n = size(second);
    var nodes = Array.prototype.slice.call(proof || []);
    if (m > n) {
      throw new ProofError("size " + m + " is larger than size " + n + ": a log never shrinks");
    }
    if (m === 0n) {
      throw new ProofError("a consistency proof from the empty tree proves nothing");
    }
    if (m === n) {
      if (nodes.length) {
        throw new ProofError("equal sizes need an empty proof");
      }
      if (!equal(firstRoot, secondRoot)) {
        throw new ProofError("two different roots for size " + m);
      }
      return;
    }
    if (nodes.some(function (node) { return node.length !== HASH_SIZE; })) {
      throw new ProofError("a proof node is not a SHA-256 hash");
    }
    if (!nodes.length) {
      throw new ProofError("the consistency proof is empty");
    }
    if ((m & (m - 1n)) === 0n) {
      // an exact power of two: the first tree is itself a node of the proof
      nodes = [firstRoot].concat(nodes);
    }
    var fn = m - 1n;
    var sn = n - 1n;
    while (fn & 1n) {
      fn >>= 1n;
      sn >>= 1n;
    }
    var fr = nodes[0];
    var sr = nodes[0];
    for (var i = 1; i < nodes.length; i++) {
      var node = nodes[i];
      if (sn === 0n) {
        throw new ProofError("the consistency proof is longer than the tree is deep");
      }
      if (fn & 1n || fn === sn) {
        fr = await nodeHash(node, fr);
        sr = await nodeHash(node, sr);
        while (!(fn & 1n) && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      } else {
        sr = await nodeHash(sr, node);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    if (sn !== 0n) {
      throw new ProofError("the consistency proof is shorter than the tree is deep");
    }
    if (!equal(fr, firstRoot)) {
      throw new ProofError("the consistency proof does not lead to the root of size " + m);
    }
    if (!equal(sr, secondRoot)) {
      throw new ProofError("the consistency proof does not lead to the root of size " + n);
    }
  }

  // -- C2SP signed notes and checkpoints -----------------------------------------------------

  function checkText(text) {
    if (!text.endsWith("\n") || /[\u0000-\u0009\u000b-\u001f]/.test(text)) {
      throw new NoteError("a note's text ends in a newline and holds no control characters");
    }
  }

  function parseNote(note) {
    var cut = note.lastIndexOf("\n\n");
    if (cut < 0 || !note.endsWith("\n")) {
      throw new NoteError("not a signed note: no blank line before signatures");
    }
    var text = note.slice(0, cut + 1);
    checkText(text);
    var lines = note.slice(cut + 2, -1).split("\n");
    var signatures = lines.map(function (line) {
      if (!line.startsWith(DASH)) {
        throw new NoteError("not a signed note: its signature lines are malformed");
      }
      var rest = line.slice(DASH.length);
      var space = rest.indexOf(" ");
      var raw;
      try {
        raw = fromBase64(space < 0 ? "" : rest.slice(space + 1));
      } catch (error) {
        throw new NoteError("not a signed note: a signature is not base64");
      }
      return { name: space < 0 ? rest : rest.slice(0, space), raw: raw };
    });
    return { text: text, signatures: signatures };
  }

  function parseCheckpoint(text) {
    var lines = text.split("\n");
    if (lines.length < 4 || lines[lines.length - 1] !== "") {
      throw new NoteError("not a checkpoint: it needs an origin, a size and a root hash");
    }
    var origin = lines[0];
    if (!origin || !/^(0|[1-9][0-9]{0,19})$/.test(lines[1])) {
      throw new NoteError("not a checkpoint: its origin or tree size is malformed");
    }
    var root;
    try {
      root = fromBase64(lines[2]);
    } catch (error) {
      throw new NoteError("not a checkpoint: its root hash is not base64");
    }
    if (root.length !== HASH_SIZE) {
      throw new NoteError("not a checkpoint: its root hash is not 32 bytes");
    }
    if (lines.slice(3, -1).some(function (line) { return !line; })) {
      throw new NoteError("not a checkpoint: an extension line is empty");
    }
    return { origin: origin, size: BigInt(lines[1]), root: root };
  }

  // The key ID: SHA-256(name || 0x0A || 0x01 || public key)[:4].
  async function keyId(name, publicKey) {
    var digest = await sha256([new TextEncoder().encode(name + "\n"), Uint8Array.of(1), publicKey]);
    return digest.slice(0, 4);
  }

  async function parseVkey(vkey) {
    // name+keyid+base64key: the base64 key may itself hold "+", so split at the first two
    var first = vkey.indexOf("+");
    var second = first < 0 ? -1 : vkey.indexOf("+", first + 1);
    var parts =
      second < 0 ? [vkey] : [vkey.slice(0, first), vkey.slice(first + 1, second), vkey.slice(second + 1)];
    if (parts.length !== 3 || !/^[^\s+]+$/.test(parts[0]) || !/^[0-9a-f]{8}$/.test(parts[1])) {
      throw new NoteError("not a verifier key: expected name+keyid+base64key");
    }
    var raw;
    try {
      raw = fromBase64(parts[2]);
    } catch (error) {
      throw new NoteError("not a verifier key: its key is not base64");
    }
    if (raw.length !== 33 || raw[0] !== 1) {
      throw new NoteError("not an Ed25519 verifier key");
    }
    var publicKey = raw.slice(1);
    var id = await keyId(parts[0], publicKey);
    if (toHex(id) !== parts[1]) {
      throw new NoteError("the verifier key's ID does not match its name and key");
    }
    return { vkey: vkey, name: parts[0], id: id, publicKey: publicKey };
  }

  /*
   * "checked" if `verifier` signed `note.text`, "unchecked" if this browser's Web Crypto has
   * no Ed25519; a NoteError if the note carries no signature of that key or a bad one.
   */
  async function checkSignature(verifier, note) {
    var found = note.signatures.filter(function (sig) {
      return sig.name === verifier.name && equal(sig.raw.slice(0, 4), verifier.id);
    });
    if (!found.length) {
      throw new NoteError("the checkpoint is not signed by the key " + verifier.name);
    }
    var key;
    try {
      key = await subtle.importKey("raw", verifier.publicKey, { name: "Ed25519" }, false, [
        "verify",
      ]);
    } catch (error) {
      if (error && error.name === "NotSupportedError") {
        return "unchecked";
      }
      throw new NoteError("the log's key cannot be read");
    }
    var ok = await subtle.verify(
      { name: "Ed25519" },
      key,
      found[0].raw.slice(4),
      new TextEncoder().encode(note.text)
    );
    if (!ok) {
      throw new NoteError("the checkpoint's signature does not verify: it was altered");
    }
    return "checked";
  }

  // -- what this browser keeps ---------------------------------------------------------------

  function storage() {
    try {
      var store = window.localStorage;
      var probe = PREFIX + "probe";
      store.setItem(probe, "1");
      store.removeItem(probe);
      return store;
    } catch (error) {
      return null;
    }
  }

  function readKept(store) {
    var origin = store.getItem(LAST_ORIGIN);
    if (!origin) {
      return null;
    }
    try {
      var kept = JSON.parse(store.getItem(PREFIX + origin));
      return {
        origin: origin,
        key: String(kept.key),
        size: size(kept.size),
        root: fromBase64(kept.root),
        note: String(kept.note),
      };
    } catch (error) {
      return { origin: origin, unreadable: true };
    }
  }

  function keep(store, record) {
    store.setItem(
      PREFIX + record.origin,
      JSON.stringify({
        key: record.key,
        size: record.size.toString(),
        root: toBase64(record.root),
        note: record.note,
        seen: new Date().toISOString(),
      })
    );
    store.setItem(LAST_ORIGIN, record.origin);
  }

  // The download-with-proofs form, when the page has one, asks from the size kept here.
  function setSince(kept) {
    var since = document.querySelector(
      '#log-proofs-form input[name="since"], #log-proofs-since'
    );
    if (since && kept && !kept.unreadable) {
      since.value = kept.size.toString();
    }
  }

  // -- the page ------------------------------------------------------------------------------

  function entries(count) {
    return count.toString() + (count === 1n ? " entry" : " entries");
  }

  function show(status, kind, sentences, notes) {
    status.hidden = false;
    status.className = kind === "warning" ? "error-summary witness" : "flash witness";
    status.replaceChildren();
    // filled a moment after it is shown, so that screen readers announce it
    window.setTimeout(function () {
      var message = document.createElement("p");
      if (kind === "warning") {
        var strong = document.createElement("strong");
        strong.textContent = "Warning: ";
        message.appendChild(strong);
      }
      message.appendChild(document.createTextNode(sentences));
      status.appendChild(message);
      (notes || []).forEach(function (item) {
        var details = document.createElement("details");
        var summary = document.createElement("summary");
        summary.textContent = item.label;
        var pre = document.createElement("pre");
        pre.textContent = item.text;
        details.append(summary, pre);
        status.appendChild(details);
      });
      status.dataset.state = kind;
    }, 50);
  }

  function warn(status, what, kept, latest) {
    var contact = status.dataset.contact || "us";
    var notes = [];
    if (kept && kept.note) {
      notes.push({ label: "The checkpoint this browser kept (" + entries(kept.size) + ")", text: kept.note });
    }
    if (latest) {
      notes.push({ label: "The checkpoint the log shows today", text: latest });
    }
    show(
      status,
      "warning",
      "The access log was changed since your last visit, or cannot be checked: " +
        what +
        ". This is what a rewritten history looks like. What to do: keep this browser's data " +
        "(it holds the checkpoint you saw before, below, and nothing new was stored), save " +
        "this page, and tell " +
        contact +
        " and an independent auditor, quoting both checkpoints.",
      notes
    );
  }

  async function fetchText(url) {
    var answer = await fetch(url, { cache: "no-store", credentials: "same-origin" });
    if (!answer.ok) {
      var error = new Error("HTTP " + answer.status);
      error.status = answer.status;
      throw error;
    }
    return answer.text();
  }

  async function consistencyProof(url, from, to) {
    var query = "?from=" + encodeURIComponent(from.toString()) + "&to=" + encodeURIComponent(to.toString());
    var body = JSON.parse(await fetchText(url + query));
    if (String(body.from) !== from.toString() || String(body.to) !== to.toString()) {
      throw new ProofError("the server answered a proof of other sizes");
    }
    if (!Array.isArray(body.proof)) {
      throw new ProofError("the server's answer holds no proof");
    }
    return body.proof.map(function (node) {
      try {
        return fromBase64(node);
      } catch (error) {
        throw new ProofError("a proof node is not base64");
      }
    });
  }

  async function witness(status) {
    var data = status.dataset;
    var store = storage();
    if (!store) {
      show(status, "info", "This browser does not let pages keep anything, so it cannot keep a witness of the access log.");
      return;
    }
    if (!subtle) {
      show(status, "info", "This browser cannot check the access log here: it offers Web Crypto only to pages served over HTTPS.");
      return;
    }
    var kept = readKept(store);
    setSince(kept);
    if (kept && kept.unreadable) {
      warn(status, "the checkpoint this browser kept for " + kept.origin + " cannot be read", null, null);
      return;
    }
    if (data.signed !== "yes") {
      if (kept) {
        warn(status, "the log shows no signed checkpoint, but this browser kept one of " + entries(kept.size), kept, null);
      }
      return; // nothing to keep yet: the first checkpoint is signed within minutes
    }
    var texts;
    try {
      texts = await Promise.all([fetchText(data.keyUrl), fetchText(data.checkpointUrl)]);
    } catch (error) {
      if (kept && error.status === 404) {
        warn(status, "the log shows no signed checkpoint, but this browser kept one of " + entries(kept.size), kept, null);
      } else {
        show(status, "info", "The access log could not be reached just now (" + error.message + "); it will be checked on your next visit.");
      }
      return;
    }
    var vkeyText = texts[0].trim();
    var noteText = texts[1];
    var verifier;
    var checkpoint;
    var signature;
    try {
      verifier = await parseVkey(vkeyText);
      var note = parseNote(noteText);
      checkpoint = parseCheckpoint(note.text);
      if (checkpoint.origin !== verifier.name) {
        throw new NoteError("the checkpoint is of " + checkpoint.origin + ", but the key is " + verifier.name + "'s");
      }
      if (kept && kept.origin !== checkpoint.origin) {
        throw new NoteError("the log now names itself " + checkpoint.origin + ", but the log you saw before was " + kept.origin);
      }
      if (kept && kept.key !== verifier.vkey) {
        throw new NoteError("the log's signing key changed since your last visit (this browser kept " + kept.key + ", the log now shows " + verifier.vkey + ")");
      }
      signature = await checkSignature(verifier, note);
    } catch (error) {
      warn(status, error.message, kept, noteText);
      return;
    }
    var unchecked = signature === "unchecked" ? " (Its signature was not checked: this browser cannot check Ed25519 signatures.)" : "";
    var latest = { origin: checkpoint.origin, key: verifier.vkey, size: checkpoint.size, root: checkpoint.root, note: noteText };
    if (!kept) {
      keep(store, latest);
      setSince(latest);
      show(status, "info", "This browser now keeps the access log's latest signed checkpoint (" + entries(checkpoint.size) + "). On your next visit it will check that the log was only added to since." + unchecked);
      return;
    }
    if (checkpoint.size < kept.size) {
      warn(status, "the log is smaller than when you last saw it (" + entries(kept.size) + " then, " + entries(checkpoint.size) + " now)", kept, noteText);
      return;
    }
    if (checkpoint.size === kept.size) {
      if (!equal(checkpoint.root, kept.root)) {
        warn(status, "the log has as many entries as when you last saw it (" + entries(kept.size) + ") but a different root hash: its history was rewritten", kept, noteText);
        return;
      }
      show(status, "info", "Checked: the access log is as you saw it on your last visit (" + entries(kept.size) + ")." + unchecked);
      return;
    }
    if (kept.size > 0n) {
      var proof;
      try {
        proof = await consistencyProof(data.consistencyUrl, kept.size, checkpoint.size);
      } catch (error) {
        if (error instanceof ProofError || (error.status >= 400 && error.status < 500)) {
          warn(status, "the log could not prove that today's log extends the one you saw (" + error.message + ")", kept, noteText);
        } else {
          show(status, "info", "The access log's proof could not be fetched just now (" + error.message + "); it will be checked on your next visit.");
        }
        return;
      }
      try {
        await verifyConsistency(kept.size, checkpoint.size, kept.root, checkpoint.root, proof);
      } catch (error) {
        warn(status, "the log you saw before (" + entries(kept.size) + ") is not part of today's (" + entries(checkpoint.size) + "): " + error.message, kept, noteText);
        return;
      }
    }
    keep(store, latest);
    setSince(latest);
    show(status, "info", "Checked: the log you saw before (" + entries(kept.size) + ") is part of today's (" + entries(checkpoint.size) + ")." + unchecked);
  }

  // For tests and for anyone who wants to check by hand, from the browser's console.
  window.infomediaryLogWitness = Object.freeze({
    verifyConsistency: verifyConsistency,
    parseNote: parseNote,
    parseCheckpoint: parseCheckpoint,
    parseVkey: parseVkey,
    checkSignature: checkSignature,
    fromBase64: fromBase64,
    ProofError: ProofError,
    NoteError: NoteError,
  });

  function start() {
    var status = document.getElementById("log-witness");
    if (status) {
      witness(status).catch(function (error) {
        show(status, "info", "The access log could not be checked this time (" + error.message + ").");
      });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
