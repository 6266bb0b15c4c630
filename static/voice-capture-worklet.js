/*
 * Chatdesk voice capture: an AudioWorklet processor that turns the microphone into
 * 24 kHz mono PCM16 little-endian frames of 960 samples (40 ms, 1 920 bytes), the format
 * voice/PROTOCOL.md asks for.
 *
 * The AudioContext runs at whatever rate the hardware uses (48 kHz or 44.1 kHz almost
 * always; asking for 24 kHz is not reliably honoured and Firefox refuses to connect a
 * microphone at another rate), so the resampling happens here, in a band-limited way:
 * plain decimation or linear interpolation would fold everything between 12 and 24 kHz
 * back into the speech band as hiss.
 *
 * The resampler and the PCM16 packer are plain classes with no worklet dependencies, so
 * tests load this same file in a page and check them on known signals.
 */
(function (scope) {
  "use strict";

  var TARGET_RATE = 24000;
  var FRAME_SAMPLES = 960; // 40 ms at 24 kHz
  // Zero crossings of the sinc on each side. With a Blackman window (~74 dB stop band) 16
  // gives 76 taps for 48 -> 24 kHz and a ~3.5 kHz transition band: a few million
  // multiply-adds a second, nothing for a worklet.
  var ZERO_CROSSINGS = 16;
  // Fractional positions of the kernel precomputed; between two we interpolate linearly.
  var PHASES = 256;
  // Cut-off (-6 dB) as a fraction of the output Nyquist: 0.85 of 12 kHz puts the whole
  // transition band (~8.4-12 kHz) below Nyquist, so nothing folds back, and leaves speech
  // (< 8 kHz) untouched.
  var CUTOFF = 0.85;

  function sinc(x) {
    if (x === 0) return 1;
    var px = Math.PI * x;
    return Math.sin(px) / px;
  }

  function blackman(x, halfWidth) {
    // x in [-halfWidth, halfWidth]
    var n = (x + halfWidth) / (2 * halfWidth);
    if (n < 0 || n > 1) return 0;
    return 0.42 - 0.5 * Math.cos(2 * Math.PI * n) + 0.08 * Math.cos(4 * Math.PI * n);
  }

  /**
   * Streaming windowed-sinc resampler, mono Float32.
   *
   * process(block) takes any number of input samples and returns the output samples that
   * are ready (a view into an internal buffer: copy or consume it before the next call).
   * State (the last input samples and the fractional read position) carries over between
   * calls, so 128-sample render quanta give the same result as one long buffer.
   */
  function Resampler(inputRate, outputRate) {
    if (!(inputRate > 0) || !(outputRate > 0)) throw new RangeError("sample rates must be positive");
    this.inputRate = inputRate;
    this.outputRate = outputRate;
    this.step = inputRate / outputRate; // input samples per output sample
    this.passthrough = inputRate === outputRate;
    // Cut-off in cycles per input sample (0.5 = input Nyquist): when downsampling it must
    // sit below the output Nyquist; when upsampling the input Nyquist is the limit.
    var cutoff = (0.5 * CUTOFF * Math.min(inputRate, outputRate)) / inputRate;
    this.halfWidth = Math.ceil(ZERO_CROSSINGS / (2 * cutoff)); // in input samples
    this.taps = 2 * this.halfWidth;
    // table[p * taps + k] = kernel at distance (k - halfWidth + 1 - p / PHASES) input samples.
    this.table = new Float32Array((PHASES + 1) * this.taps);
    for (var p = 0; p <= PHASES; p++) {
      var frac = p / PHASES;
      var sum = 0;
      for (var k = 0; k < this.taps; k++) {
        var x = k - this.halfWidth + 1 - frac;
        var value = 2 * cutoff * sinc(2 * cutoff * x) * blackman(x, this.halfWidth);
        this.table[p * this.taps + k] = value;
        sum += value;
      }
      // Unity gain at DC for every phase, or a slow ripple would modulate the output.
      for (k = 0; k < this.taps; k++) this.table[p * this.taps + k] /= sum;
    }
    // history holds unconsumed input; it starts with halfWidth - 1 zeros so the first
    // output sample (at input position 0) has its left-hand neighbours.
    this.history = new Float32Array(this.taps + 8192);
    this.length = this.halfWidth - 1;
    this.position = this.halfWidth - 1; // of the next output sample, in history's samples
    this.output = new Float32Array(64);
  }

  Resampler.prototype.process = function (block) {
    if (this.passthrough) return block;
    // Append the block to the history (growing it if a caller sends huge blocks).
    if (this.length + block.length > this.history.length) {
      var bigger = new Float32Array((this.length + block.length) * 2);
      bigger.set(this.history.subarray(0, this.length));
      this.history = bigger;
    }
    this.history.set(block, this.length);
    this.length += block.length;

    var maxOut = Math.ceil((this.length - this.position) / this.step) + 1;
    if (this.output.length < maxOut) this.output = new Float32Array(maxOut * 2);
    var out = this.output;
    var count = 0;
    var taps = this.taps;
    var table = this.table;
    var history = this.history;
    var position = this.position;
    // An output sample at position t needs input samples floor(t) - halfWidth + 1 ...
    // floor(t) + halfWidth: stop when the right-hand ones have not arrived yet.
    while (Math.floor(position) + this.halfWidth < this.length) {
      var base = Math.floor(position);
      var phase = (position - base) * PHASES;
      var p = Math.floor(phase);
      var mix = phase - p;
      var row0 = p * taps;
      var row1 = row0 + taps;
      var first = base - this.halfWidth + 1;
      var acc0 = 0;
      var acc1 = 0;
      var k;
      if (mix === 0) {
        // Integer ratios (48 -> 24 kHz) always land on a precomputed phase.
        for (k = 0; k < taps; k++) acc0 += history[first + k] * table[row0 + k];
        out[count++] = acc0;
      } else {
        for (k = 0; k < taps; k++) {
          var sample = history[first + k];
          acc0 += sample * table[row0 + k];
          acc1 += sample * table[row1 + k];
        }
        out[count++] = acc0 + (acc1 - acc0) * mix;
      }
      position += this.step;
    }
    // Drop input no future output sample can reach; keep positions relative to the start.
    var keepFrom = Math.max(0, Math.floor(position) - this.halfWidth + 1);
    if (keepFrom > 0) {
      history.copyWithin(0, keepFrom, this.length);
      this.length -= keepFrom;
      position -= keepFrom;
    }
    this.position = position;
    return out.subarray(0, count);
  };

  /**
   * Packs Float32 samples into fixed-size PCM16 little-endian frames.
   * push() returns the completed frames (ArrayBuffers, transferable) in order.
   */
  function Pcm16Framer(frameSamples) {
    this.frameSamples = frameSamples || FRAME_SAMPLES;
    this.reset();
  }

  Pcm16Framer.prototype.reset = function () {
    this.buffer = new ArrayBuffer(this.frameSamples * 2);
    this.view = new DataView(this.buffer);
    this.fill = 0;
  };

  Pcm16Framer.prototype.push = function (samples) {
    var frames = [];
    for (var i = 0; i < samples.length; i++) {
      var s = samples[i];
      // Clip rather than wrap: a loud peak that wraps around becomes a loud click.
      s = s > 1 ? 1 : s < -1 ? -1 : s;
      var value = s < 0 ? Math.round(s * 32768) : Math.round(s * 32767);
      this.view.setInt16(this.fill * 2, value, true); // little-endian whatever the CPU
      this.fill++;
      if (this.fill === this.frameSamples) {
        frames.push(this.buffer);
        this.reset();
      }
    }
    return frames;
  };

  scope.ChatdeskVoiceDsp = {
    Resampler: Resampler,
    Pcm16Framer: Pcm16Framer,
    TARGET_RATE: TARGET_RATE,
    FRAME_SAMPLES: FRAME_SAMPLES,
  };

  if (typeof AudioWorkletProcessor === "undefined" || typeof registerProcessor !== "function") {
    return; // loaded in a page (tests): the DSP classes are all there is to it
  }

  /*
   * Messages to the main thread: {pcm: ArrayBuffer(1920), level: 0..1} per 40 ms frame.
   * Messages from it: {muted: bool} (muted: no frames, the partial one is dropped so
   * unmuting never sends stale audio), {stop: true} (end the processor).
   */
  class CaptureProcessor extends AudioWorkletProcessor {
    constructor(options) {
      super();
      var processorOptions = (options && options.processorOptions) || {};
      // `sampleRate` is the AudioContext's real rate, a global of the worklet scope.
      this.resampler = new Resampler(sampleRate, processorOptions.targetRate || TARGET_RATE);
      this.framer = new Pcm16Framer(processorOptions.frameSamples || FRAME_SAMPLES);
      this.muted = false;
      this.stopped = false;
      this.peak = 0;
      this.port.onmessage = (event) => {
        var data = event.data || {};
        if (typeof data.muted === "boolean") {
          this.muted = data.muted;
          this.framer.reset();
        }
        if (data.stop) this.stopped = true;
      };
    }

    process(inputs) {
      if (this.stopped) return false;
      var input = inputs[0];
      // No channels: the microphone track ended or is not connected yet; keep the node.
      if (!input || input.length === 0) return true;
      // The node is created with channelCount 1 / "explicit": the graph already mixed to mono.
      var samples = this.resampler.process(input[0]);
      if (this.muted) return true;
      for (var i = 0; i < samples.length; i++) {
        var magnitude = samples[i] < 0 ? -samples[i] : samples[i];
        if (magnitude > this.peak) this.peak = magnitude;
      }
      var frames = this.framer.push(samples);
      for (var f = 0; f < frames.length; f++) {
        this.port.postMessage({ pcm: frames[f], level: this.peak }, [frames[f]]);
        this.peak = 0;
      }
      return true;
    }
  }

  registerProcessor("chatdesk-capture", CaptureProcessor);
})(typeof globalThis !== "undefined" ? globalThis : this);
