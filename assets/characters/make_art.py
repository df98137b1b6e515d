"""Draws the AI host's two characters as SVG bust portraits and renders them to PNG.

Run it from anywhere: python3 assets/characters/make_art.py
It writes, for each character folder (auctioneer/, pixel/), one SVG and one
512x512 RGBA PNG per mood (mouth closed), per mood with the mouth open
(<mood>-talk), and blink.svg/png, an overlay of closed eyelids.

Every mood image of a character draws its eyes at the same centres and inside the
same lid area, so blink.png laid over any of them shows closed eyes.
Needs rsvg-convert (apt-get install librsvg2-bin); standard library only.
"""
import os
import random
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DRAW_EYES = True  # a check can turn the open eyes off to see where they are drawn
MOODS = ["neutral", "happy", "excited", "tense", "surprised", "disappointed", "celebrating"]


# ---------------------------------------------------------------- helpers


def P(d, cx=0.0, cy=0.0, s=1.0):
    """Moves a path written with absolute M/L/C/Q/Z commands to (cx, cy), mirrored in x when s=-1."""
    out = []
    nums = []

    def flush():
        for i in range(0, len(nums), 2):
            out.append(f"{cx + s * nums[i]:.1f} {cy + nums[i + 1]:.1f}")
        nums.clear()

    for tok in re.findall(r"[A-Za-z]|-?\d*\.?\d+", d):
        if tok.isalpha():
            flush()
            out.append(tok)
        else:
            nums.append(float(tok))
    flush()
    return " ".join(out)


def M(d):
    """Mirrors an absolute path about the vertical centre line x=256."""
    return P(d, 512, 0, -1)


def star4(x, y, r, fill, op=1.0, thin=0.22):
    k = r * thin
    d = (f"M {x} {y - r} C {x + k} {y - k} {x + k} {y - k} {x + r} {y} "
         f"C {x + k} {y + k} {x + k} {y + k} {x} {y + r} "
         f"C {x - k} {y + k} {x - k} {y + k} {x - r} {y} "
         f"C {x - k} {y - k} {x - k} {y - k} {x} {y - r} Z")
    return f'<path d="{d}" fill="{fill}" opacity="{op}"/>'


class Doc:
    def __init__(self):
        self.defs = []
        self.body = []
        self.n = 0

    def uid(self, stem):
        self.n += 1
        return f"{stem}{self.n}"

    def add(self, s):
        self.body.append(s)

    def svg(self):
        return ('<svg xmlns="http://www.w3.org/2000/svg" width="512" height="512" '
                'viewBox="0 0 512 512">\n<defs>\n' + "\n".join(self.defs) + "\n</defs>\n"
                + "\n".join(self.body) + "\n</svg>\n")


def brow(cx, s_in, yi, yo, arch, ti, to, fill, stroke=None, sw=3.0, inner=22, outer=27):
    """A tapered eyebrow. s_in=+1 when the inner end lies at larger x."""
    xi = cx + s_in * inner
    xo = cx - s_in * outer
    mx = (xi + xo) / 2
    my = (yi + yo) / 2 - 2 * arch
    tm = (ti + to) / 2 + 1.5
    d = (f"M {xo:.1f} {yo - to / 2:.1f} Q {mx:.1f} {my - tm:.1f} {xi:.1f} {yi - ti / 2:.1f} "
         f"Q {xi + s_in * 4:.1f} {yi:.1f} {xi:.1f} {yi + ti / 2:.1f} "
         f"Q {mx:.1f} {my + tm * 0.3:.1f} {xo:.1f} {yo + to / 2:.1f} "
         f"Q {xo - s_in * 3:.1f} {yo:.1f} {xo:.1f} {yo - to / 2:.1f} Z")
    st = f' stroke="{stroke}" stroke-width="{sw}" stroke-linejoin="round"' if stroke else ""
    return f'<path d="{d}" fill="{fill}"{st}/>'


def in_lid(doc, lid, art):
    """Clips an eye's drawing to its lid area, so the blink overlay always covers it."""
    cid = doc.uid("lid")
    doc.defs.append(f'<clipPath id="{cid}"><path d="{lid}"/></clipPath>')
    return f'<g clip-path="url(#{cid})">\n{art}\n</g>'


def open_mouth(doc, outline, out, sw, inside, teeth_top=None, teeth_bot=None, tongue=None,
               tongue_fill="#e0707c", extra=""):
    """An open mouth: dark inside, teeth bands and a tongue, clipped to the outline."""
    cid = doc.uid("mouth")
    doc.defs.append(f'<clipPath id="{cid}"><path d="{outline}"/></clipPath>')
    g = [f'<path d="{outline}" fill="{inside}"/>', f'<g clip-path="url(#{cid})">']
    if tongue:
        tx, ty, rx, ry = tongue
        g.append(f'<ellipse cx="{tx}" cy="{ty}" rx="{rx}" ry="{ry}" fill="{tongue_fill}"/>')
        g.append(f'<path d="M {tx - rx * 0.1} {ty - ry * 0.6} Q {tx} {ty - ry * 0.2} {tx + rx * 0.1} {ty - ry * 0.6}" '
                 f'stroke="#b24a58" stroke-width="2" fill="none" opacity="0.7"/>')
    if teeth_top:
        y, h = teeth_top
        g.append(f'<path d="M 0 {y - 20} L 512 {y - 20} L 512 {y + h} Q 256 {y + h + 4} 0 {y + h} Z" fill="#fbfbf7"/>')
    if teeth_bot:
        y, h = teeth_bot
        g.append(f'<path d="M 0 {y + 20} L 512 {y + 20} L 512 {y - h} Q 256 {y - h - 3} 0 {y - h} Z" fill="#f1efe8"/>')
    g.append(extra)
    g.append("</g>")
    g.append(f'<path d="{outline}" fill="none" stroke="{out}" stroke-width="{sw}" stroke-linejoin="round"/>')
    return "\n".join(g)


def drop(x, y, k, out, grad):
    d = P("M 0 -20 C 7 -8 13 0 13 8 C 13 16 7 21 0 21 C -7 21 -13 16 -13 8 C -13 0 -7 -8 0 -20 Z")
    return (f'<g transform="translate({x} {y}) scale({k})">'
            f'<path d="{d}" fill="url(#{grad})" stroke="{out}" stroke-width="3" stroke-linejoin="round"/>'
            f'<path d="M -6 6 C -6 1 -3 -4 -1 -7" stroke="#ffffff" stroke-width="3" stroke-linecap="round" fill="none"/>'
            f'<circle cx="-5" cy="12" r="2" fill="#ffffff"/></g>')


def confetti(seed, colours, n, keep):
    """Confetti pieces at random places where keep(x, y) is true."""
    rnd = random.Random(seed)
    out = []
    while len(out) < n:
        x, y = rnd.uniform(8, 504), rnd.uniform(8, 420)
        if not keep(x, y):
            continue
        c = rnd.choice(colours)
        a = rnd.uniform(0, 180)
        kind = rnd.random()
        if kind < 0.45:
            w, h = rnd.uniform(9, 14), rnd.uniform(5, 7)
            out.append(f'<rect x="{-w / 2:.1f}" y="{-h / 2:.1f}" width="{w:.1f}" height="{h:.1f}" rx="1.5" '
                       f'fill="{c}" transform="translate({x:.1f} {y:.1f}) rotate({a:.0f})"/>')
        elif kind < 0.7:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{rnd.uniform(3.5, 5.5):.1f}" fill="{c}"/>')
        else:
            out.append(f'<path d="M -8 0 Q -4 -6 0 0 Q 4 6 8 0" stroke="{c}" stroke-width="3.5" fill="none" '
                       f'stroke-linecap="round" transform="translate({x:.1f} {y:.1f}) rotate({a:.0f})"/>')
    return "\n".join(out)


# ================================================================ Sir Reginald Hammerstone

A_OUT = "#2b1a17"
A_SW = 3.5
A_EYES = [(218, 224, -1), (294, 224, 1)]   # centre x, centre y, outward direction
A_MOUTH = (256, 306)
A_SKIN_SHADE = "#c98463"

A_FACE = ("M 256 110 C 318 110 350 150 350 212 C 350 262 338 296 312 320 "
          "C 290 338 272 347 256 347 C 240 347 222 338 200 320 "
          "C 174 296 162 262 162 212 C 162 150 194 110 256 110 Z")

# The closed-lid area of one eye, relative to its centre, x pointing outward.
A_LID = "M -27 0 C -27 -16 -12 -23 0 -23 C 13 -23 28 -15 29 -2 C 29 12 13 20 0 20 C -13 20 -27 13 -27 0 Z"


def a_defs():
    return """
<radialGradient id="skin" gradientUnits="userSpaceOnUse" cx="256" cy="205" r="165">
  <stop offset="0" stop-color="#f9d6b5"/><stop offset="0.55" stop-color="#f2c09b"/><stop offset="1" stop-color="#d99470"/>
</radialGradient>
<linearGradient id="neck" gradientUnits="userSpaceOnUse" x1="0" y1="300" x2="0" y2="390">
  <stop offset="0" stop-color="#c98463"/><stop offset="1" stop-color="#e3a883"/>
</linearGradient>
<linearGradient id="hair" gradientUnits="userSpaceOnUse" x1="0" y1="62" x2="0" y2="250">
  <stop offset="0" stop-color="#fbfcfe"/><stop offset="0.45" stop-color="#d7dde6"/><stop offset="1" stop-color="#9aa3b2"/>
</linearGradient>
<linearGradient id="hairback" gradientUnits="userSpaceOnUse" x1="0" y1="80" x2="0" y2="260">
  <stop offset="0" stop-color="#9099a8"/><stop offset="1" stop-color="#5f6777"/>
</linearGradient>
<linearGradient id="stache" gradientUnits="userSpaceOnUse" x1="0" y1="268" x2="0" y2="300">
  <stop offset="0" stop-color="#f4f6f9"/><stop offset="1" stop-color="#a6aebb"/>
</linearGradient>
<linearGradient id="jacket" gradientUnits="userSpaceOnUse" x1="0" y1="360" x2="0" y2="512">
  <stop offset="0" stop-color="#26335f"/><stop offset="1" stop-color="#0e1530"/>
</linearGradient>
<linearGradient id="lapel" gradientUnits="userSpaceOnUse" x1="150" y1="370" x2="250" y2="512">
  <stop offset="0" stop-color="#3a4b86"/><stop offset="0.45" stop-color="#1c2650"/><stop offset="1" stop-color="#0f1633"/>
</linearGradient>
<linearGradient id="shirt" gradientUnits="userSpaceOnUse" x1="0" y1="360" x2="0" y2="512">
  <stop offset="0" stop-color="#ffffff"/><stop offset="1" stop-color="#d9dfea"/>
</linearGradient>
<linearGradient id="bow" gradientUnits="userSpaceOnUse" x1="0" y1="360" x2="0" y2="404">
  <stop offset="0" stop-color="#b8314a"/><stop offset="1" stop-color="#6a1022"/>
</linearGradient>
<linearGradient id="gold" x1="0" y1="0" x2="1" y2="1">
  <stop offset="0" stop-color="#fff1ad"/><stop offset="0.5" stop-color="#e2b341"/><stop offset="1" stop-color="#a5721b"/>
</linearGradient>
<radialGradient id="iris" cx="0.45" cy="0.35" r="0.75">
  <stop offset="0" stop-color="#8ab8ea"/><stop offset="0.55" stop-color="#34609e"/><stop offset="1" stop-color="#1a3260"/>
</radialGradient>
<radialGradient id="blush">
  <stop offset="0" stop-color="#ff6c7c" stop-opacity="0.62"/><stop offset="1" stop-color="#ff6c7c" stop-opacity="0"/>
</radialGradient>
<linearGradient id="drop" x1="0" y1="0" x2="0" y2="1">
  <stop offset="0" stop-color="#e8fbff"/><stop offset="1" stop-color="#72c9f5"/>
</linearGradient>
<linearGradient id="gloom" gradientUnits="userSpaceOnUse" x1="0" y1="130" x2="0" y2="196">
  <stop offset="0" stop-color="#4e3f8c" stop-opacity="0.55"/><stop offset="1" stop-color="#4e3f8c" stop-opacity="0"/>
</linearGradient>
<radialGradient id="lidshade" gradientUnits="objectBoundingBox" cx="0.5" cy="0.2" r="0.6">
  <stop offset="0" stop-color="#b8704f" stop-opacity="0.22"/><stop offset="1" stop-color="#b8704f" stop-opacity="0"/>
</radialGradient>
<clipPath id="faceclip"><path d="%s"/></clipPath>
""" % A_FACE


def a_body():
    jacket = ("M 14 512 C 18 462 54 426 122 406 C 164 394 194 380 212 358 L 300 358 "
              "C 318 380 348 394 390 406 C 458 426 494 462 498 512 Z")
    shirt = "M 212 360 L 300 360 L 272 512 L 240 512 Z"
    lapel = ("M 212 360 C 220 420 233 470 241 512 L 204 512 C 190 470 168 438 148 414 "
             "L 180 402 L 170 388 C 188 382 202 372 212 360 Z")
    arm = "M 14 512 C 18 470 44 440 92 420 C 82 450 76 482 78 512 Z"
    neck = "M 218 288 L 218 372 C 236 392 276 392 294 372 L 294 288 Z"
    jaw_shadow = "M 210 312 C 230 342 244 352 256 354 C 268 352 282 342 302 312 L 300 350 C 280 368 232 368 212 350 Z"
    collar = "M 214 350 C 232 372 280 372 298 350 L 302 366 C 284 390 228 390 210 366 Z"
    wing = "M 228 370 L 252 386 L 232 398 Z"
    bow_l = "M 256 380 C 242 366 226 360 212 364 C 205 374 205 392 212 400 C 226 402 242 394 256 382 Z"
    fold_l = "M 222 372 C 228 378 230 386 226 394"
    pocket_sq = "M 352 466 L 360 440 L 372 456 L 386 430 L 398 452 L 412 436 L 418 458 Z"
    g = [
        f'<path d="{neck}" fill="url(#neck)" stroke="{A_OUT}" stroke-width="{A_SW}"/>',
        f'<path d="{jaw_shadow}" fill="#a8644a" opacity="0.55"/>',
        f'<path d="{jacket}" fill="url(#jacket)" stroke="{A_OUT}" stroke-width="{A_SW}" stroke-linejoin="round"/>',
        f'<path d="{arm}" fill="#080c1e" opacity="0.55"/>',
        f'<path d="{M(arm)}" fill="#080c1e" opacity="0.55"/>',
        # seams and folds of the jacket
        '<path d="M 96 430 C 110 460 116 486 114 512" stroke="#3b4a7e" stroke-width="2.5" fill="none" opacity="0.7"/>',
        f'<path d="{M("M 96 430 C 110 460 116 486 114 512")}" stroke="#3b4a7e" stroke-width="2.5" fill="none" opacity="0.7"/>',
        f'<path d="{shirt}" fill="url(#shirt)" stroke="{A_OUT}" stroke-width="{A_SW}" stroke-linejoin="round"/>',
        '<path d="M 246 396 L 248 512 M 266 396 L 264 512" stroke="#c3cad8" stroke-width="2" fill="none"/>',
    ]
    for y in (424, 458, 492):
        g.append(f'<circle cx="256" cy="{y}" r="5" fill="#151a2e" stroke="url(#gold)" stroke-width="2.5"/>')
    g += [
        f'<path d="{lapel}" fill="url(#lapel)" stroke="{A_OUT}" stroke-width="{A_SW}" stroke-linejoin="round"/>',
        f'<path d="{M(lapel)}" fill="url(#lapel)" stroke="{A_OUT}" stroke-width="{A_SW}" stroke-linejoin="round"/>',
        # satin sheen on the lapels
        '<path d="M 200 392 C 208 430 218 468 224 506" stroke="#6d80c4" stroke-width="3" fill="none" opacity="0.45" stroke-linecap="round"/>',
        f'<path d="{M("M 200 392 C 208 430 218 468 224 506")}" stroke="#6d80c4" stroke-width="3" fill="none" opacity="0.45" stroke-linecap="round"/>',
        f'<path d="{collar}" fill="url(#shirt)" stroke="{A_OUT}" stroke-width="{A_SW}" stroke-linejoin="round"/>',
        f'<path d="{wing}" fill="#ffffff" stroke="{A_OUT}" stroke-width="3" stroke-linejoin="round"/>',
        f'<path d="{M(wing)}" fill="#ffffff" stroke="{A_OUT}" stroke-width="3" stroke-linejoin="round"/>',
        # pocket square and breast pocket
        f'<path d="{pocket_sq}" fill="url(#gold)" stroke="{A_OUT}" stroke-width="3" stroke-linejoin="round"/>',
        '<path d="M 364 452 L 372 456 M 392 446 L 398 452" stroke="#a5721b" stroke-width="2" fill="none"/>',
        f'<path d="M 346 466 L 424 458" stroke="{A_OUT}" stroke-width="4" stroke-linecap="round"/>',
        # gold monocle chain from the lapel buttonhole to a monocle hanging on the chest
        '<path d="M 172 432 C 160 470 140 486 116 478" stroke="url(#gold)" stroke-width="4" fill="none" '
        'stroke-dasharray="5 3" stroke-linecap="round"/>',
        f'<circle cx="172" cy="432" r="4" fill="url(#gold)" stroke="{A_OUT}" stroke-width="2"/>',
        f'<circle cx="100" cy="474" r="17" fill="#cfe6ff" fill-opacity="0.35" stroke="{A_OUT}" stroke-width="7"/>',
        '<circle cx="100" cy="474" r="17" fill="none" stroke="url(#gold)" stroke-width="4"/>',
        '<path d="M 90 466 C 93 462 98 460 103 460" stroke="#ffffff" stroke-width="2.5" fill="none" stroke-linecap="round"/>',
        # burgundy bow tie
        f'<path d="{bow_l}" fill="url(#bow)" stroke="{A_OUT}" stroke-width="{A_SW}" stroke-linejoin="round"/>',
        f'<path d="{M(bow_l)}" fill="url(#bow)" stroke="{A_OUT}" stroke-width="{A_SW}" stroke-linejoin="round"/>',
        f'<path d="{fold_l}" stroke="#4e0a18" stroke-width="2.5" fill="none" stroke-linecap="round"/>',
        f'<path d="{M(fold_l)}" stroke="#4e0a18" stroke-width="2.5" fill="none" stroke-linecap="round"/>',
        '<path d="M 218 372 C 226 368 236 370 244 374" stroke="#e0627a" stroke-width="2.5" fill="none" stroke-linecap="round" opacity="0.8"/>',
        f'<rect x="245" y="369" width="22" height="23" rx="7" fill="url(#bow)" stroke="{A_OUT}" stroke-width="{A_SW}"/>',
        '<path d="M 250 375 L 262 375" stroke="#e0627a" stroke-width="2" stroke-linecap="round" opacity="0.8"/>',
    ]
    return "\n".join(g)


def a_head_back():
    back = ("M 156 238 C 140 170 158 100 214 80 C 246 68 290 68 318 78 "
            "C 370 98 374 170 356 238 C 350 200 340 180 330 170 L 182 170 C 172 180 162 200 156 238 Z")
    ear = "M 168 208 C 148 196 138 220 142 240 C 146 262 158 274 174 270 Z"
    ear_in = "M 163 222 C 152 224 151 242 158 254 C 162 258 166 258 168 254"
    return "\n".join([
        f'<path d="{back}" fill="url(#hairback)" stroke="{A_OUT}" stroke-width="{A_SW}" stroke-linejoin="round"/>',
        f'<path d="{ear}" fill="url(#skin)" stroke="{A_OUT}" stroke-width="{A_SW}" stroke-linejoin="round"/>',
        f'<path d="{M(ear)}" fill="url(#skin)" stroke="{A_OUT}" stroke-width="{A_SW}" stroke-linejoin="round"/>',
        f'<path d="{ear_in}" stroke="{A_SKIN_SHADE}" stroke-width="3" fill="none" stroke-linecap="round"/>',
        f'<path d="{M(ear_in)}" stroke="{A_SKIN_SHADE}" stroke-width="3" fill="none" stroke-linecap="round"/>',
    ])


def a_face():
    cheek = "M 150 200 C 152 262 174 300 206 326 C 186 292 178 256 180 200 Z"
    temple = "M 150 150 L 200 150 L 200 178 C 190 176 180 180 176 196 L 150 196 Z"
    nose = "M 247 250 C 245 257 242 263 241 268"
    nose_b = "M 238 268 C 242 276 250 279 256 277 C 262 279 270 276 274 268"
    nose_side = "M 262 250 C 267 257 271 263 271 270 C 266 266 262 265 258 264 Z"
    smile_line = "M 218 282 C 210 294 212 308 222 318"
    crow = "M 186 216 L 180 212 M 186 224 L 179 224 M 186 231 L 180 235"
    return "\n".join([
        f'<path d="{A_FACE}" fill="url(#skin)"/>',
        '<g clip-path="url(#faceclip)">',
        f'<path d="{cheek}" fill="{A_SKIN_SHADE}" opacity="0.35"/>',
        f'<path d="{M(cheek)}" fill="{A_SKIN_SHADE}" opacity="0.35"/>',
        f'<path d="M 200 322 C 226 346 286 346 312 322 L 312 360 L 200 360 Z" fill="{A_SKIN_SHADE}" opacity="0.25"/>',
        '</g>',
        f'<path d="{A_FACE}" fill="none" stroke="{A_OUT}" stroke-width="{A_SW}" stroke-linejoin="round"/>',
        f'<path d="{nose_side}" fill="{A_SKIN_SHADE}" opacity="0.4"/>',
        f'<path d="{nose}" stroke="#b7735a" stroke-width="3" fill="none" stroke-linecap="round"/>',
        f'<path d="{nose_b}" stroke="#9a5a44" stroke-width="3.2" fill="none" stroke-linecap="round"/>',
        '<ellipse cx="259" cy="265" rx="5" ry="3.5" fill="#ffffff" opacity="0.35"/>',
        f'<path d="{smile_line}" stroke="{A_SKIN_SHADE}" stroke-width="2.5" fill="none" stroke-linecap="round" opacity="0.8"/>',
        f'<path d="{M(smile_line)}" stroke="{A_SKIN_SHADE}" stroke-width="2.5" fill="none" stroke-linecap="round" opacity="0.8"/>',
        f'<path d="{crow}" stroke="{A_SKIN_SHADE}" stroke-width="2" fill="none" stroke-linecap="round" opacity="0.8"/>',
        f'<path d="{M(crow)}" stroke="{A_SKIN_SHADE}" stroke-width="2" fill="none" stroke-linecap="round" opacity="0.8"/>',
    ])


A_EYE_SHAPE = {
    #               top, bottom, iris r, pupil r
    "neutral": (14, 11, 9.0, 4.2),
    "happy": (14, 11, 9.0, 4.2),
    "excited": (16, 12, 9.5, 4.0),
    "tense": (14, 11, 6.5, 2.6),
    "surprised": (19, 15, 6.5, 2.6),
    "disappointed": (14, 11, 9.0, 4.2),
}


def a_eye(doc, cx, cy, s, mood):
    e = []
    if mood == "celebrating":
        # happy closed eyes: ^ ^
        e.append(f'<path d="{P("M -19 5 C -12 -11 12 -11 20 4", cx, cy, s)}" stroke="{A_OUT}" '
                 'stroke-width="5" fill="none" stroke-linecap="round"/>')
        e.append(f'<path d="{P("M 19 1 L 25 -2", cx, cy, s)}" stroke="{A_OUT}" stroke-width="3" stroke-linecap="round"/>')
        e.append(f'<path d="{P("M -12 11 C -4 14 6 14 14 11", cx, cy, s)}" stroke="{A_SKIN_SHADE}" '
                 'stroke-width="2.2" fill="none" stroke-linecap="round"/>')
        return "\n".join(e)
    ht, hb, ir, pr = A_EYE_SHAPE[mood]
    sclera = P(f"M -20 1 C -13 {-ht} 11 {-ht} 21 -1 C 14 {hb} -12 {hb} -20 1 Z", cx, cy, s)
    cid = doc.uid("eye")
    doc.defs.append(f'<clipPath id="{cid}"><path d="{sclera}"/></clipPath>')
    iy = cy + (3 if mood == "disappointed" else 0)
    e.append(f'<path d="{sclera}" fill="#fdfbf6"/>')
    e.append(f'<g clip-path="url(#{cid})">')
    e.append(f'<path d="{P(f"M -22 -16 L 22 -16 L 22 {-ht * 0.75 + 5} C 10 {-ht * 0.75 + 2} -10 {-ht * 0.75 + 2} -22 {-ht * 0.75 + 5} Z", cx, cy, s)}" '
             'fill="#c9b8a8" opacity="0.5"/>')
    e.append(f'<circle cx="{cx}" cy="{iy}" r="{ir}" fill="url(#iris)" stroke="#142447" stroke-width="1.5"/>')
    e.append(f'<circle cx="{cx}" cy="{iy}" r="{pr}" fill="#0d1120"/>')
    if mood == "excited":
        e.append(star4(cx + 2.5, iy - 3, 7.5, "#ffffff"))
        e.append(f'<circle cx="{cx - 4}" cy="{iy + 4}" r="1.6" fill="#ffffff"/>')
    else:
        e.append(f'<circle cx="{cx + 3}" cy="{iy - 3.5}" r="{max(1.8, ir * 0.3):.1f}" fill="#ffffff"/>')
        e.append(f'<circle cx="{cx - 3}" cy="{iy + 3.5}" r="1.3" fill="#ffffff" opacity="0.9"/>')
    e.append("</g>")
    if mood == "disappointed":
        # heavy upper lid half over the eye
        e.append(f'<path d="{P("M -24 -18 L 24 -18 L 24 1 C 12 -3 -10 -5 -24 -2 Z", cx, cy, s)}" fill="url(#skin)"/>')
        e.append(f'<path d="{P("M -21 -1 C -10 -5 10 -4 23 1 L 26 3", cx, cy, s)}" stroke="{A_OUT}" '
                 'stroke-width="4.2" fill="none" stroke-linecap="round" stroke-linejoin="round"/>')
        e.append(f'<path d="{P("M -15 -9 C -5 -12 8 -12 18 -9", cx, cy, s)}" stroke="{A_SKIN_SHADE}" '
                 'stroke-width="2" fill="none" stroke-linecap="round"/>')
    else:
        e.append(f'<path d="{P(f"M -21 2 C -14 {-ht - 1} 11 {-ht - 1} 22 -1 L 26 -4", cx, cy, s)}" stroke="{A_OUT}" '
                 'stroke-width="4.2" fill="none" stroke-linecap="round" stroke-linejoin="round"/>')
        if ht < 17:
            e.append(f'<path d="{P(f"M -15 {-ht * 0.75 - 5} C -5 {-ht * 0.75 - 8} 8 {-ht * 0.75 - 8} 18 {-ht * 0.75 - 4}", cx, cy, s)}" '
                     f'stroke="{A_SKIN_SHADE}" stroke-width="2" fill="none" stroke-linecap="round"/>')
    e.append(f'<path d="{P(f"M -16 5 C -8 {hb * 0.75 + 1} 10 {hb * 0.75 + 1} 19 2", cx, cy, s)}" stroke="#7a4a3a" '
             'stroke-width="1.8" fill="none" stroke-linecap="round" opacity="0.6"/>')
    if mood == "happy":
        # cheeks push the lower lids up into a smile
        e.append(f'<path d="{P("M -23 9 C -12 2 12 1 24 7 L 24 19 L -23 19 Z", cx, cy, s)}" fill="url(#skin)"/>')
        e.append(f'<path d="{P("M -19 8 C -10 3 10 2 20 6", cx, cy, s)}" stroke="{A_OUT}" stroke-width="2.5" '
                 'fill="none" stroke-linecap="round"/>')
    return "\n".join(e)


A_BROWS = {
    #                 inner y, outer y, arch, inner thick, outer thick  (relative to eye centre)
    "neutral": (-31, -33, 3, 11, 7),
    "happy": (-34, -34, 5, 11, 7),
    "excited": (-40, -38, 5, 11, 7),
    "tense": (-40, -30, -1, 11, 7),
    "surprised": (-47, -44, 6, 11, 7),
    "disappointed": (-36, -25, -2, 11, 7),
    "celebrating": (-40, -38, 5, 11, 7),
}


def a_brows(mood):
    yi, yo, arch, ti, to = A_BROWS[mood]
    out = []
    for cx, cy, s in A_EYES:
        out.append(brow(cx, -s, cy + yi, cy + yo, arch, ti, to, "#8b929f", A_OUT, 3.0))
        # a few bristles for a bushy, distinguished brow
        xi, xo = cx - s * 22, cx + s * 27
        for t in (0.25, 0.5, 0.75):
            x = xo + (xi - xo) * t
            y = cy + yo + (yi - yo) * t - arch * 2 * (1 - (2 * t - 1) ** 2) * 0.5
            out.append(f'<path d="M {x:.1f} {y + 1:.1f} L {x - s * 5:.1f} {y - 2:.1f}" stroke="#d6dbe3" '
                       'stroke-width="1.8" stroke-linecap="round"/>')
    return "\n".join(out)


def a_moustache():
    half = ("M 256 279 C 246 271 230 269 216 277 C 206 283 198 289 188 286 C 183 284 181 278 184 272 "
            "C 176 278 176 292 190 297 C 204 301 220 295 234 293 C 244 291 252 291 256 294 Z")
    strands = "M 246 280 C 236 278 222 282 212 290 M 236 288 C 226 288 212 294 200 294"
    return "\n".join([
        f'<path d="{half}" fill="url(#stache)" stroke="{A_OUT}" stroke-width="{A_SW}" stroke-linejoin="round"/>',
        f'<path d="{M(half)}" fill="url(#stache)" stroke="{A_OUT}" stroke-width="{A_SW}" stroke-linejoin="round"/>',
        f'<path d="{strands}" stroke="#8d96a4" stroke-width="1.8" fill="none" stroke-linecap="round"/>',
        f'<path d="{M(strands)}" stroke="#8d96a4" stroke-width="1.8" fill="none" stroke-linecap="round"/>',
    ])


def a_mouth(doc, mood, talk):
    o, sw = A_OUT, A_SW
    inside = "#5a1620"
    lip = f'<path d="M 246 318 C 252 321 260 321 266 318" stroke="{A_SKIN_SHADE}" stroke-width="2.5" fill="none" stroke-linecap="round"/>'
    if mood == "neutral":
        if not talk:
            return f'<path d="M 234 303 C 246 308 266 308 278 303" stroke="{o}" stroke-width="{sw}" fill="none" stroke-linecap="round"/>' + lip
        return open_mouth(doc, "M 234 298 C 244 296 268 296 278 298 C 277 314 267 323 256 323 C 245 323 235 314 234 298 Z",
                          o, sw, inside, teeth_top=(297, 6), tongue=(256, 323, 14, 8))
    if mood == "happy":
        if not talk:
            return (f'<path d="M 226 300 C 238 316 274 316 286 300" stroke="{o}" stroke-width="{sw}" fill="none" stroke-linecap="round"/>'
                    f'<path d="M 222 296 L 228 302 M 290 296 L 284 302" stroke="{o}" stroke-width="3" stroke-linecap="round"/>' + lip.replace("318", "322"))
        return open_mouth(doc, "M 226 297 C 240 300 272 300 286 297 C 283 322 269 333 256 333 C 243 333 229 322 226 297 Z",
                          o, sw, inside, teeth_top=(299, 7), tongue=(256, 334, 17, 10))
    if mood == "excited":
        if not talk:
            d = "M 218 296 C 236 302 276 302 294 296 C 288 318 272 327 256 327 C 240 327 224 318 218 296 Z"
            return open_mouth(doc, d, o, sw, "#fbfbf7",
                              extra=f'<path d="M 222 309 C 240 314 272 314 290 309" stroke="#b8b2a6" stroke-width="2.5" fill="none"/>'
                                    f'<path d="M 238 300 L 238 326 M 256 301 L 256 328 M 274 300 L 274 326" stroke="#d4cfc4" stroke-width="1.8"/>')
        return open_mouth(doc, "M 216 295 C 236 300 276 300 296 295 C 292 326 274 339 256 339 C 238 339 220 326 216 295 Z",
                          o, sw, inside, teeth_top=(298, 8), tongue=(256, 340, 22, 12))
    if mood == "tense":
        if not talk:
            d = "M 230 300 C 246 298 266 298 282 300 C 284 306 283 311 281 315 C 266 313 246 313 231 315 C 229 311 228 306 230 300 Z"
            return open_mouth(doc, d, o, sw, "#fbfbf7",
                              extra='<path d="M 228 307 C 246 305 266 305 284 307" stroke="#9c948a" stroke-width="2" fill="none"/>'
                                    '<path d="M 241 298 L 241 316 M 251 298 L 251 316 M 261 298 L 261 316 M 271 298 L 271 316" stroke="#9c948a" stroke-width="1.8"/>')
        return open_mouth(doc, "M 238 303 C 244 299 268 299 274 303 C 276 309 274 318 270 321 C 262 318 250 318 242 321 C 238 318 236 309 238 303 Z",
                          o, sw, inside, teeth_top=(301, 5), tongue=(256, 324, 12, 6))
    if mood == "surprised":
        if not talk:
            return open_mouth(doc, "M 256 300 C 263 300 265 305 265 309 C 265 314 261 317 256 317 C 251 317 247 314 247 309 C 247 305 249 300 256 300 Z",
                              o, sw, inside)
        return open_mouth(doc, "M 256 297 C 270 297 275 310 275 320 C 275 332 266 339 256 339 C 246 339 237 332 237 320 C 237 310 242 297 256 297 Z",
                          o, sw, inside, tongue=(256, 340, 13, 9))
    if mood == "disappointed":
        if not talk:
            return (f'<path d="M 230 316 C 240 303 272 303 282 316" stroke="{o}" stroke-width="{sw}" fill="none" stroke-linecap="round"/>'
                    f'<path d="M 248 324 C 252 326 260 326 264 324" stroke="{A_SKIN_SHADE}" stroke-width="2.5" fill="none" stroke-linecap="round"/>')
        return open_mouth(doc, "M 230 324 C 233 300 279 300 282 324 C 272 328 240 328 230 324 Z",
                          o, sw, inside, teeth_top=(302, 5), tongue=(256, 328, 16, 8))
    if mood == "celebrating":
        if not talk:
            d = "M 214 294 C 234 302 278 302 298 294 C 292 320 274 330 256 330 C 238 330 220 320 214 294 Z"
            return open_mouth(doc, d, o, sw, "#fbfbf7",
                              extra='<path d="M 218 310 C 238 316 274 316 294 310" stroke="#b8b2a6" stroke-width="2.5" fill="none"/>'
                                    '<path d="M 234 299 L 234 328 M 256 301 L 256 331 M 278 299 L 278 328" stroke="#d4cfc4" stroke-width="1.8"/>')
        return open_mouth(doc, "M 212 293 C 234 300 278 300 300 293 C 297 328 277 342 256 342 C 235 342 215 328 212 293 Z",
                          o, sw, inside, teeth_top=(297, 8), tongue=(256, 343, 24, 13))
    raise ValueError(mood)


def a_hair_front():
    front = ("M 164 260 C 154 236 148 190 156 150 C 166 106 200 78 232 70 "
             "C 256 54 294 56 320 72 C 358 94 368 150 358 200 C 356 222 354 242 348 260 "
             "C 342 246 340 230 340 212 C 338 188 332 170 322 158 C 304 142 282 138 266 138 "
             "C 262 136 258 133 254 130 C 248 136 240 139 228 140 C 206 144 190 154 182 168 "
             "C 174 184 172 206 172 230 C 172 242 170 252 164 260 Z")
    hi = "M 192 114 C 220 84 282 76 318 92 C 284 86 238 94 206 122 Z"
    strands = [
        "M 188 162 C 194 124 222 98 266 90",
        "M 214 146 C 226 116 256 100 302 100",
        "M 266 136 C 292 120 322 126 342 150",
        "M 162 220 C 158 180 166 140 194 112",
        "M 346 222 C 352 186 348 150 330 124",
        "M 228 80 C 248 68 276 66 300 72",
    ]
    dark = [
        "M 236 140 C 250 112 284 102 326 114",
        "M 178 182 C 184 148 204 124 240 110",
        "M 166 250 C 162 230 162 206 168 186",
        "M 344 250 C 348 230 348 206 344 186",
        "M 300 138 C 318 134 334 146 340 166",
    ]
    g = [
        f'<clipPath id="hairclip"><path d="{front}"/></clipPath>',
        f'<path d="{front}" fill="url(#hair)"/>',
        '<g clip-path="url(#hairclip)">'
        '<path d="M 140 120 C 160 160 170 200 178 270 L 120 270 Z" fill="#6f7888" opacity="0.45"/>'
        f'<path d="{M("M 140 120 C 160 160 170 200 178 270 L 120 270 Z")}" fill="#6f7888" opacity="0.45"/>'
        '</g>',
        f'<path d="{front}" fill="none" stroke="{A_OUT}" stroke-width="{A_SW}" stroke-linejoin="round"/>',
    ]
    g += [f'<path d="{d}" stroke="#8790a0" stroke-width="2.5" fill="none" stroke-linecap="round"/>' for d in dark]
    g += [f'<path d="{d}" stroke="#ffffff" stroke-width="2.5" fill="none" stroke-linecap="round" opacity="0.85"/>' for d in strands]
    g.append(f'<path d="{hi}" fill="#ffffff" opacity="0.75"/>')
    return "\n".join(g)


def a_party_hat():
    cone = "M 262 92 L 316 8 L 348 104 Z"
    cid = "hatclip"
    return "\n".join([
        f'<clipPath id="{cid}"><path d="{cone}"/></clipPath>',
        f'<path d="{cone}" fill="#8c1d33" stroke="{A_OUT}" stroke-width="{A_SW}" stroke-linejoin="round"/>',
        f'<g clip-path="url(#{cid})">',
        '<path d="M 250 70 L 350 40 L 350 56 L 250 86 Z M 250 100 L 360 68 L 360 84 L 250 116 Z" fill="url(#gold)"/>',
        '<path d="M 290 60 L 312 20" stroke="#ffffff" stroke-width="4" opacity="0.35" stroke-linecap="round"/>',
        '</g>',
        f'<path d="M 258 92 C 286 108 324 112 352 102" stroke="{A_OUT}" stroke-width="{A_SW}" fill="none" stroke-linecap="round"/>',
        f'<circle cx="316" cy="10" r="11" fill="url(#gold)" stroke="{A_OUT}" stroke-width="3"/>',
        '<circle cx="312" cy="6" r="3.5" fill="#ffffff" opacity="0.8"/>',
    ])


def a_extras_back(mood):
    if mood == "celebrating":
        cols = ["#e2b341", "#b8314a", "#3f6fd8", "#f4f6f9", "#2fb79a", "#ffd45c"]
        streamers = [
            ('M 20 150 C 50 120 70 170 100 140 C 130 110 140 160 160 130', "#e2b341"),
            ('M 492 170 C 462 140 442 190 412 160 C 382 130 372 180 352 150', "#b8314a"),
            ('M 30 300 C 60 270 70 320 100 290', "#3f6fd8"),
            ('M 482 300 C 452 270 442 320 412 290', "#e2b341"),
        ]
        s = [confetti(7, cols, 70, lambda x, y: True)]
        s += [f'<path d="{d}" stroke="{c}" stroke-width="6" fill="none" stroke-linecap="round"/>' for d, c in streamers]
        return "\n".join(s)
    if mood == "excited":
        s = []
        for x, y, r in [(96, 120, 18), (420, 100, 22), (60, 230, 11), (452, 230, 13), (130, 60, 9), (380, 40, 10)]:
            s.append(star4(x, y, r + 3, A_OUT))
            s.append(star4(x, y, r, "#f6cf55"))
        return "\n".join(s)
    return ""


def a_extras_face(mood):
    """Marks on the skin, drawn under the hair: blush, worry lines, gloom."""
    s = []
    if mood in ("happy", "celebrating", "excited"):
        op = 0.75 if mood == "excited" else 1.0
        for x in (194, 318):
            s.append(f'<ellipse cx="{x}" cy="264" rx="25" ry="13" fill="url(#blush)" opacity="{op}"/>')
        if mood == "celebrating":
            for x in (182, 306):
                s.append(f'<path d="M {x} 268 L {x + 6} 258 M {x + 10} 268 L {x + 16} 258 M {x + 20} 268 L {x + 26} 258" '
                         'stroke="#e0505f" stroke-width="2.2" stroke-linecap="round" opacity="0.8"/>')
    if mood == "tense":
        s.append(f'<path d="M 238 160 C 248 155 264 155 274 160 M 243 171 C 251 167 261 167 269 171" stroke="{A_SKIN_SHADE}" '
                 'stroke-width="2.5" fill="none" stroke-linecap="round"/>')
    if mood == "disappointed":
        s.append('<g clip-path="url(#faceclip)">'
                 '<path d="M 160 126 L 352 126 L 352 198 L 160 198 Z" fill="url(#gloom)"/>'
                 '</g>')
        for x in (222, 238, 254, 270, 286):
            s.append(f'<path d="M {x} 146 L {x} {170 if x % 32 else 178}" stroke="#4e3f8c" stroke-width="2.5" stroke-linecap="round" opacity="0.75"/>')
    return "\n".join(s)


def a_extras_front(mood):
    s = []
    if mood == "excited":
        # motion lines beside the head
        for side in (-1, 1):
            for y, l in [(190, 34), (218, 46), (246, 34)]:
                x0 = 256 + side * 120
                s.append(f'<path d="M {x0} {y} L {x0 + side * l} {y - 6}" stroke="{A_OUT}" stroke-width="5" stroke-linecap="round"/>')
                s.append(f'<path d="M {x0} {y} L {x0 + side * l} {y - 6}" stroke="#f6cf55" stroke-width="2" stroke-linecap="round"/>')
    if mood == "tense":
        s.append(drop(336, 178, 1.15, A_OUT, "drop"))
        s.append(drop(184, 182, 0.7, A_OUT, "drop"))
    if mood == "surprised":
        for side in (-1, 1):
            for ang in (-30, 0, 30):
                s.append(f'<g transform="translate({256 + side * 150} 120) rotate({side * ang})">'
                         f'<path d="M 0 -14 L 0 -38" stroke="{A_OUT}" stroke-width="7" stroke-linecap="round"/>'
                         f'<path d="M 0 -14 L 0 -38" stroke="#f6cf55" stroke-width="3" stroke-linecap="round"/></g>')
    if mood == "disappointed":
        s.append(drop(352, 150, 0.75, A_OUT, "drop"))
    if mood == "celebrating":
        s.append(a_party_hat())
        cols = ["#e2b341", "#b8314a", "#3f6fd8", "#2fb79a", "#ffd45c"]
        s.append(confetti(11, cols, 16, lambda x, y: (x < 120 or x > 392) and y < 330))
    return "\n".join(s)


def auctioneer(mood, talk):
    doc = Doc()
    doc.defs.append(a_defs())
    doc.add(a_extras_back(mood))
    doc.add(a_head_back())
    doc.add(a_body())
    doc.add(a_face())
    doc.add(a_mouth(doc, mood, talk))
    doc.add(a_moustache())
    for cx, cy, s in A_EYES:
        if DRAW_EYES:
            doc.add(in_lid(doc, P(A_LID, cx, cy, s), a_eye(doc, cx, cy, s, mood)))
    doc.add(a_extras_face(mood))
    doc.add(a_hair_front())
    doc.add(a_brows(mood))
    doc.add(a_extras_front(mood))
    return doc.svg()


def auctioneer_blink():
    doc = Doc()
    doc.defs.append(a_defs())
    for cx, cy, s in A_EYES:
        lid = P(A_LID, cx, cy, s)
        doc.add(f'<path d="{lid}" fill="url(#skin)"/>')
        doc.add(f'<path d="{lid}" fill="url(#lidshade)"/>')
        doc.add(f'<path d="{P("M -15 -8 C -5 -12 8 -12 18 -7", cx, cy, s)}" stroke="{A_SKIN_SHADE}" '
                'stroke-width="2" fill="none" stroke-linecap="round"/>')
        doc.add(f'<path d="{P("M -21 1 C -12 9 12 9 22 0", cx, cy, s)}" stroke="{A_OUT}" '
                'stroke-width="4.2" fill="none" stroke-linecap="round"/>')
        doc.add(f'<path d="{P("M 20 2 L 26 6 M 15 5 L 19 10 M 9 7 L 11 12", cx, cy, s)}" stroke="{A_OUT}" '
                'stroke-width="2.2" fill="none" stroke-linecap="round"/>')
    return doc.svg()


# ================================================================ Pixel

X_OUT = "#1c0f35"
X_SW = 3.5
X_EYES = [(214, 258, -1), (298, 258, 1)]
X_MOUTH = (256, 320)
X_SKIN_SHADE = "#e49a92"
CYAN, MAGENTA, VIOLET = "#2ff3ff", "#ff3ec8", "#8b5cff"

X_FACE = ("M 256 138 C 320 138 346 182 346 238 C 346 284 326 320 296 342 "
          "C 282 352 268 356 256 356 C 244 356 230 352 216 342 "
          "C 186 320 166 284 166 238 C 166 182 192 138 256 138 Z")

# The closed-lid area of one eye, relative to its centre, x pointing outward.
X_LID = "M -31 4 C -31 -30 18 -42 39 -17 C 41 6 24 31 -2 31 C -20 31 -31 20 -31 4 Z"


def x_defs():
    return f"""
<radialGradient id="skin" gradientUnits="userSpaceOnUse" cx="256" cy="236" r="150">
  <stop offset="0" stop-color="#fff1e8"/><stop offset="0.6" stop-color="#ffdccd"/><stop offset="1" stop-color="#f0b0a2"/>
</radialGradient>
<linearGradient id="neck" gradientUnits="userSpaceOnUse" x1="0" y1="330" x2="0" y2="380">
  <stop offset="0" stop-color="#e0958f"/><stop offset="1" stop-color="#f7c8ba"/>
</linearGradient>
<linearGradient id="hair" gradientUnits="userSpaceOnUse" x1="170" y1="110" x2="330" y2="350">
  <stop offset="0" stop-color="#3ef5ff"/><stop offset="0.35" stop-color="#4aa6ff"/><stop offset="0.65" stop-color="#9a5cff"/><stop offset="1" stop-color="#ff3ec8"/>
</linearGradient>
<linearGradient id="hairback" gradientUnits="userSpaceOnUse" x1="150" y1="120" x2="360" y2="350">
  <stop offset="0" stop-color="#1fa9c9"/><stop offset="0.5" stop-color="#5a34b8"/><stop offset="1" stop-color="#b01f8e"/>
</linearGradient>
<linearGradient id="holo" gradientUnits="userSpaceOnUse" x1="40" y1="370" x2="472" y2="512">
  <stop offset="0" stop-color="#84f7ff"/><stop offset="0.22" stop-color="#b79cff"/><stop offset="0.45" stop-color="#ff92e2"/>
  <stop offset="0.62" stop-color="#9ffcff"/><stop offset="0.82" stop-color="#c6a0ff"/><stop offset="1" stop-color="#ff86d6"/>
</linearGradient>
<linearGradient id="holoshade" gradientUnits="userSpaceOnUse" x1="0" y1="380" x2="0" y2="512">
  <stop offset="0" stop-color="#3a1d6e" stop-opacity="0"/><stop offset="1" stop-color="#3a1d6e" stop-opacity="0.45"/>
</linearGradient>
<linearGradient id="suit" gradientUnits="userSpaceOnUse" x1="0" y1="360" x2="0" y2="512">
  <stop offset="0" stop-color="#2a2050"/><stop offset="1" stop-color="#110c24"/>
</linearGradient>
<linearGradient id="iris" x1="0" y1="0" x2="0" y2="1">
  <stop offset="0" stop-color="#2a0c63"/><stop offset="0.5" stop-color="#a33cff"/><stop offset="0.8" stop-color="#ff4fd8"/><stop offset="1" stop-color="#6ff6ff"/>
</linearGradient>
<linearGradient id="shell" x1="0" y1="0" x2="0" y2="1">
  <stop offset="0" stop-color="#3b2a6e"/><stop offset="1" stop-color="#17102e"/>
</linearGradient>
<radialGradient id="blush">
  <stop offset="0" stop-color="#ff4f9a" stop-opacity="0.6"/><stop offset="1" stop-color="#ff4f9a" stop-opacity="0"/>
</radialGradient>
<linearGradient id="drop" x1="0" y1="0" x2="0" y2="1">
  <stop offset="0" stop-color="#e6ffff"/><stop offset="1" stop-color="#3fe0ff"/>
</linearGradient>
<radialGradient id="lidshade" gradientUnits="objectBoundingBox" cx="0.5" cy="0.25" r="0.6">
  <stop offset="0" stop-color="#d27aa0" stop-opacity="0.28"/><stop offset="1" stop-color="#d27aa0" stop-opacity="0"/>
</radialGradient>
<filter id="glow" x="-40%" y="-40%" width="180%" height="180%">
  <feGaussianBlur stdDeviation="3.5" result="b"/>
  <feMerge><feMergeNode in="b"/><feMergeNode in="SourceGraphic"/></feMerge>
</filter>
<clipPath id="faceclip"><path d="{X_FACE}"/></clipPath>
"""


def x_hair_back():
    back = ("M 146 334 C 128 262 130 176 168 128 C 200 88 312 88 344 128 "
            "C 382 176 384 262 366 334 C 352 346 330 350 314 344 L 198 344 C 182 350 160 346 146 334 Z")
    return "\n".join([
        f'<path d="{back}" fill="url(#hairback)" stroke="{X_OUT}" stroke-width="{X_SW}" stroke-linejoin="round"/>',
        '<path d="M 162 300 C 156 260 156 210 170 170 M 350 300 C 356 260 356 210 342 170" '
        'stroke="#ffffff" stroke-width="3" fill="none" opacity="0.3" stroke-linecap="round"/>',
    ])


def x_body():
    neck = "M 232 326 L 232 388 L 280 388 L 280 326 Z"
    jaw_shadow = "M 228 332 C 240 350 250 356 256 357 C 262 356 272 350 284 332 L 284 362 C 270 372 242 372 228 362 Z"
    jacket = ("M 40 512 C 44 464 76 430 140 412 C 178 402 204 392 220 376 L 292 376 "
              "C 308 392 334 402 372 412 C 436 430 468 464 472 512 Z")
    inner = "M 222 376 L 290 376 L 304 512 L 208 512 Z"
    turtleneck = "M 226 360 C 240 368 272 368 286 360 L 292 392 C 274 400 238 400 220 392 Z"
    collar = "M 224 366 C 206 362 186 368 172 380 C 178 400 194 414 214 422 L 224 392 Z"
    front_edge = "M 222 392 C 218 430 214 470 210 512"
    sleeve = "M 40 512 C 44 470 70 440 112 424 C 100 452 96 484 98 512 Z"
    badge = "M 150 462 L 160 452 L 170 462 L 160 472 Z"
    g = [
        f'<path d="{neck}" fill="url(#neck)" stroke="{X_OUT}" stroke-width="{X_SW}"/>',
        f'<path d="{jaw_shadow}" fill="#c77884" opacity="0.55"/>',
        f'<path d="{jacket}" fill="url(#holo)" stroke="{X_OUT}" stroke-width="{X_SW}" stroke-linejoin="round"/>',
        f'<path d="{jacket}" fill="url(#holoshade)"/>',
        # puffer quilting seams
        f'<clipPath id="jacketclip"><path d="{jacket}"/></clipPath>',
        '<g clip-path="url(#jacketclip)" stroke="#6a3fb0" stroke-width="2.5" fill="none" opacity="0.55" stroke-linecap="round">'
        '<path d="M 40 468 C 90 446 150 436 214 440 M 60 500 C 110 478 160 470 212 472 M 110 424 C 150 414 186 408 218 410"/>'
        f'<path d="{M("M 40 468 C 90 446 150 436 214 440 M 60 500 C 110 478 160 470 212 472 M 110 424 C 150 414 186 408 218 410")}"/>'
        '</g>',
        f'<path d="{sleeve}" fill="#3a1d6e" opacity="0.3"/>',
        f'<path d="{M(sleeve)}" fill="#3a1d6e" opacity="0.3"/>',
        # holographic sheen streaks
        '<path d="M 70 470 L 120 420 M 84 490 L 142 430 M 370 430 L 430 478 M 392 424 L 448 470" '
        'stroke="#ffffff" stroke-width="6" opacity="0.35" stroke-linecap="round"/>',
        f'<path d="{inner}" fill="url(#suit)" stroke="{X_OUT}" stroke-width="{X_SW}" stroke-linejoin="round"/>',
        # neon circuit traces on the dark suit
        f'<g filter="url(#glow)" stroke="{CYAN}" stroke-width="2.5" fill="none" stroke-linecap="round">'
        '<path d="M 240 410 L 240 440 L 230 450 L 230 512 M 272 410 L 272 430 L 284 442 L 284 512 M 256 420 L 256 470"/>'
        f'<circle cx="240" cy="408" r="3.5" fill="{CYAN}"/><circle cx="272" cy="408" r="3.5" fill="{CYAN}"/>'
        '</g>',
        f'<path d="M 256 470 L 268 482 L 256 494 L 244 482 Z" fill="{MAGENTA}" filter="url(#glow)"/>',
        f'<path d="{turtleneck}" fill="url(#suit)" stroke="{X_OUT}" stroke-width="{X_SW}" stroke-linejoin="round"/>',
        f'<path d="M 222 386 C 240 394 272 394 290 386" stroke="{MAGENTA}" stroke-width="2.5" fill="none" filter="url(#glow)"/>',
        f'<path d="{collar}" fill="url(#holo)" stroke="{X_OUT}" stroke-width="{X_SW}" stroke-linejoin="round"/>',
        f'<path d="{M(collar)}" fill="url(#holo)" stroke="{X_OUT}" stroke-width="{X_SW}" stroke-linejoin="round"/>',
        '<path d="M 214 372 C 200 372 188 378 180 386" stroke="#ffffff" stroke-width="3" opacity="0.7" fill="none" stroke-linecap="round"/>',
        f'<path d="{M("M 214 372 C 200 372 188 378 180 386")}" stroke="#ffffff" stroke-width="3" opacity="0.7" fill="none" stroke-linecap="round"/>',
        f'<path d="{front_edge}" stroke="{MAGENTA}" stroke-width="3" fill="none" filter="url(#glow)"/>',
        f'<path d="{M(front_edge)}" stroke="{CYAN}" stroke-width="3" fill="none" filter="url(#glow)"/>',
        # a glowing diamond badge on the jacket
        f'<g filter="url(#glow)"><path d="{badge}" fill="{CYAN}" stroke="{X_OUT}" stroke-width="2"/></g>',
        f'<path d="{P(badge, 22, 18)}" fill="{MAGENTA}" stroke="{X_OUT}" stroke-width="2"/>',
        # choker with a gem
        f'<path d="M 231 348 C 246 354 266 354 281 348 L 281 358 C 266 364 246 364 231 358 Z" fill="#1c0f35" stroke="{X_OUT}" stroke-width="2"/>',
        f'<path d="M 256 356 L 262 363 L 256 370 L 250 363 Z" fill="{MAGENTA}" stroke="{X_OUT}" stroke-width="1.8" filter="url(#glow)"/>',
    ]
    return "\n".join(g)


def x_face():
    cheek = "M 156 230 C 158 286 182 322 220 346 C 194 314 184 278 184 230 Z"
    return "\n".join([
        f'<path d="{X_FACE}" fill="url(#skin)"/>',
        '<g clip-path="url(#faceclip)">',
        f'<path d="{cheek}" fill="{X_SKIN_SHADE}" opacity="0.3"/>',
        f'<path d="{M(cheek)}" fill="{X_SKIN_SHADE}" opacity="0.3"/>',
        f'<path d="M 200 336 C 230 360 282 360 312 336 L 312 370 L 200 370 Z" fill="{X_SKIN_SHADE}" opacity="0.25"/>',
        # soft shadow cast by the bangs
        f'<path d="M 160 200 C 200 214 312 214 352 200 L 352 150 L 160 150 Z" fill="#c77884" opacity="0.3"/>',
        '</g>',
        f'<path d="{X_FACE}" fill="none" stroke="{X_OUT}" stroke-width="{X_SW}" stroke-linejoin="round"/>',
        '<path d="M 254 290 C 257 293 259 295 255 297" stroke="#c9857d" stroke-width="2.8" fill="none" stroke-linecap="round"/>',
        '<ellipse cx="259" cy="288" rx="3" ry="2" fill="#ffffff" opacity="0.7"/>',
    ])


X_EYE_SHAPE = {
    #               top, bottom, iris rx, iris ry, pupil rx, pupil ry
    "neutral": (24, 20, 15, 18, 6.5, 9),
    "happy": (24, 20, 15, 18, 6.5, 9),
    "excited": (26, 21, 16, 19, 7, 10),
    "tense": (24, 20, 10, 13, 3.5, 5),
    "surprised": (29, 24, 8.5, 10.5, 3, 4),
    "disappointed": (24, 20, 15, 18, 6.5, 9),
}


def x_eye(doc, cx, cy, s, mood):
    e = []
    if mood == "celebrating":
        # > < squeezed eyes
        e.append(f'<path d="{P("M 22 -15 L -12 1 L 22 16", cx, cy, s)}" stroke="{X_OUT}" stroke-width="7" '
                 'fill="none" stroke-linecap="round" stroke-linejoin="round"/>')
        e.append(f'<path d="{P("M 24 -22 L 30 -27 M 10 -22 L 12 -29", cx, cy, s)}" stroke="{X_OUT}" stroke-width="3" stroke-linecap="round"/>')
        return "\n".join(e)
    ht, hb, irx, iry, prx, pry = X_EYE_SHAPE[mood]
    sclera = P(f"M -24 2 C -22 {-ht} 16 {-ht - 4} 29 -8 C 26 {hb * 0.6} 12 {hb} -2 {hb} "
               f"C -14 {hb} -23 {hb * 0.6} -24 2 Z", cx, cy, s)
    cid = doc.uid("eye")
    doc.defs.append(f'<clipPath id="{cid}"><path d="{sclera}"/></clipPath>')
    ix = cx + s * 2
    iy = cy + (7 if mood == "disappointed" else 1)
    e.append(f'<path d="{sclera}" fill="#ffffff"/>')
    e.append(f'<g clip-path="url(#{cid})">')
    e.append(f'<path d="{P(f"M -30 -40 L 34 -40 L 34 {-ht * 0.6 + 6} C 10 {-ht * 0.6 + 2} -10 {-ht * 0.6 + 2} -30 {-ht * 0.6 + 6} Z", cx, cy, s)}" '
             'fill="#c9b6ef" opacity="0.6"/>')
    e.append(f'<ellipse cx="{ix}" cy="{iy}" rx="{irx}" ry="{iry}" fill="url(#iris)" stroke="#2a0c63" stroke-width="2"/>')
    if mood == "excited":
        e.append(star4(ix, iy, 12, "#fff6b0", thin=0.2))
        e.append(star4(ix, iy, 7, "#ffffff", thin=0.25))
        e.append(f'<circle cx="{ix - s * 8}" cy="{iy - 10}" r="3" fill="#ffffff"/>')
    else:
        e.append(f'<ellipse cx="{ix}" cy="{iy}" rx="{prx}" ry="{pry}" fill="#160626"/>')
        e.append(f'<path d="M {ix - irx * 0.7:.1f} {iy + iry * 0.55:.1f} Q {ix} {iy + iry * 0.95:.1f} {ix + irx * 0.7:.1f} {iy + iry * 0.55:.1f}" '
                 f'stroke="{CYAN}" stroke-width="2.5" fill="none" opacity="0.9"/>')
        hx = ix - s * irx * 0.3
        e.append(f'<ellipse cx="{hx:.1f}" cy="{iy - iry * 0.42:.1f}" rx="{max(2.5, irx * 0.36):.1f}" ry="{max(3, iry * 0.38):.1f}" fill="#ffffff"/>')
        e.append(f'<circle cx="{ix + s * irx * 0.5:.1f}" cy="{iy + iry * 0.42:.1f}" r="{max(1.6, irx * 0.17):.1f}" fill="#ffffff"/>')
    e.append("</g>")
    if mood == "disappointed":
        e.append(f'<path d="{P("M -28 -30 L 33 -30 L 33 2 C 16 -5 -10 -7 -28 -2 Z", cx, cy, s)}" fill="url(#skin)"/>')
        e.append(f'<path d="{P("M -24 -1 C -10 -7 14 -5 29 1", cx, cy, s)}" stroke="{X_OUT}" stroke-width="5.5" '
                 'fill="none" stroke-linecap="round"/>')
        e.append(f'<path d="{P("M 26 -1 L 35 1 L 29 6 Z", cx, cy, s)}" fill="{X_OUT}"/>')
        e.append(f'<path d="{P("M -18 -13 C -6 -17 12 -16 25 -9", cx, cy, s)}" stroke="{X_SKIN_SHADE}" stroke-width="2.2" '
                 'fill="none" stroke-linecap="round"/>')
    else:
        e.append(f'<path d="{P(f"M -24 2 C -22 {-ht} 16 {-ht - 4} 29 -8", cx, cy, s)}" stroke="{X_OUT}" '
                 'stroke-width="5.5" fill="none" stroke-linecap="round"/>')
        e.append(f'<path d="{P("M 25 -10 L 35 -16 L 31 -4 Z", cx, cy, s)}" fill="{X_OUT}" stroke="{X_OUT}" stroke-width="1.5" stroke-linejoin="round"/>')
        if ht < 27:
            e.append(f'<path d="{P(f"M -16 {-ht - 2} C -4 {-ht - 6} 12 {-ht - 6} 24 {-ht + 2}", cx, cy, s)}" '
                     f'stroke="{X_SKIN_SHADE}" stroke-width="2.2" fill="none" stroke-linecap="round"/>')
    e.append(f'<path d="{P(f"M 2 {hb - 0.5} C 12 {hb - 1.5} 22 {hb * 0.55} 27 -1", cx, cy, s)}" stroke="{X_OUT}" '
             'stroke-width="2.5" fill="none" stroke-linecap="round"/>')
    if mood == "happy":
        e.append(f'<path d="{P("M -28 14 C -14 4 16 2 33 10 L 33 30 L -28 30 Z", cx, cy, s)}" fill="url(#skin)"/>')
        e.append(f'<path d="{P("M -22 12 C -10 5 14 4 27 9", cx, cy, s)}" stroke="{X_OUT}" stroke-width="3" '
                 'fill="none" stroke-linecap="round"/>')
    if mood == "tense":
        e.append(f'<path d="{P("M -14 25 L -8 22 L -2 25 L 4 22 L 10 25", cx, cy, s)}" stroke="{X_SKIN_SHADE}" stroke-width="2" '
                 'fill="none" stroke-linecap="round" stroke-linejoin="round"/>')
    return "\n".join(e)


X_BROWS = {
    "neutral": (-42, -44, 3, 9, 6),
    "happy": (-46, -47, 5, 9, 6),
    "excited": (-52, -50, 5, 9, 6),
    "tense": (-53, -40, -1, 9, 6),
    "surprised": (-59, -56, 6, 9, 6),
    "disappointed": (-50, -37, -2, 9, 6),
    "celebrating": (-52, -50, 5, 9, 6),
}


def x_brows(mood):
    yi, yo, arch, ti, to = X_BROWS[mood]
    out = []
    for cx, cy, s in X_EYES:
        out.append(brow(cx, -s, cy + yi, cy + yo, arch, ti, to, "#2a0d4a", inner=20, outer=28))
    return "\n".join(out)


def x_mouth(doc, mood, talk):
    o, sw = X_OUT, X_SW
    inside = "#6a1438"
    fang = '<path d="M 244 311 L 248 319 L 251 311 Z" fill="#ffffff" stroke="#1c0f35" stroke-width="1.5" stroke-linejoin="round"/>'
    if mood == "neutral":
        if not talk:
            return f'<path d="M 243 318 C 250 323 262 323 269 318" stroke="{o}" stroke-width="{sw}" fill="none" stroke-linecap="round"/>'
        return open_mouth(doc, "M 242 313 C 250 311 262 311 270 313 C 270 325 264 332 256 332 C 248 332 242 325 242 313 Z",
                          o, sw, inside, teeth_top=(312, 4), tongue=(256, 333, 10, 6), tongue_fill="#ff7aa8")
    if mood == "happy":
        if not talk:
            return f'<path d="M 236 314 C 240 324 252 324 256 316 C 260 324 272 324 276 314" stroke="{o}" stroke-width="{sw}" fill="none" stroke-linecap="round" stroke-linejoin="round"/>'
        return open_mouth(doc, "M 234 310 C 246 313 266 313 278 310 C 276 331 266 341 256 341 C 246 341 236 331 234 310 Z",
                          o, sw, inside, tongue=(256, 342, 14, 9), tongue_fill="#ff7aa8", extra=fang)
    if mood == "excited":
        if not talk:
            return open_mouth(doc, "M 228 308 C 244 313 268 313 284 308 C 280 326 268 333 256 333 C 244 333 232 326 228 308 Z",
                              o, sw, inside, teeth_top=(309, 6), tongue=(256, 335, 14, 8), tongue_fill="#ff7aa8")
        return open_mouth(doc, "M 226 306 C 242 311 270 311 286 306 C 284 334 270 346 256 346 C 242 346 228 334 226 306 Z",
                          o, sw, inside, teeth_top=(308, 6), tongue=(256, 347, 17, 11), tongue_fill="#ff7aa8", extra=fang)
    if mood == "tense":
        if not talk:
            return f'<path d="M 236 322 C 240 314 244 314 248 320 C 252 326 256 326 260 320 C 264 314 268 314 272 320 C 274 323 276 323 278 321" stroke="{o}" stroke-width="{sw}" fill="none" stroke-linecap="round" stroke-linejoin="round"/>'
        return open_mouth(doc, "M 240 316 C 248 312 264 312 272 316 C 274 322 272 328 270 331 C 262 328 250 328 242 331 C 240 328 238 322 240 316 Z",
                          o, sw, inside, teeth_top=(314, 5), teeth_bot=(330, 4))
    if mood == "surprised":
        if not talk:
            return open_mouth(doc, "M 256 313 C 262 313 264 318 264 322 C 264 327 260 330 256 330 C 252 330 248 327 248 322 C 248 318 250 313 256 313 Z",
                              o, sw, inside)
        return open_mouth(doc, "M 256 306 C 268 306 271 320 271 327 C 271 338 264 344 256 344 C 248 344 241 338 241 327 C 241 320 244 306 256 306 Z",
                          o, sw, inside, tongue=(256, 345, 11, 8), tongue_fill="#ff7aa8")
    if mood == "disappointed":
        if not talk:
            return f'<path d="M 240 326 C 248 315 264 315 272 326" stroke="{o}" stroke-width="{sw}" fill="none" stroke-linecap="round"/>'
        return open_mouth(doc, "M 240 328 C 244 314 268 314 272 328 C 264 331 248 331 240 328 Z",
                          o, sw, inside, tongue=(256, 331, 10, 5), tongue_fill="#ff7aa8")
    if mood == "celebrating":
        if not talk:
            return (f'<path d="M 226 308 C 236 330 276 330 286 308" stroke="{o}" stroke-width="{sw + 0.5}" fill="none" stroke-linecap="round"/>'
                    f'<path d="M 222 304 L 230 310 M 290 304 L 282 310" stroke="{o}" stroke-width="3" stroke-linecap="round"/>')
        return open_mouth(doc, "M 222 305 C 240 312 272 312 290 305 C 288 336 272 350 256 350 C 240 350 224 336 222 305 Z",
                          o, sw, inside, teeth_top=(307, 6), tongue=(256, 351, 19, 12), tongue_fill="#ff7aa8", extra=fang)
    raise ValueError(mood)


def x_hair_front():
    bangs = ("M 164 252 C 154 178 192 116 256 114 C 320 116 358 178 348 252 "
             "C 344 232 340 220 334 208 C 330 216 326 222 320 226 C 318 212 312 200 304 192 "
             "C 298 202 290 208 280 212 C 280 200 276 190 270 182 C 264 196 256 204 244 210 "
             "C 246 198 244 188 238 180 C 230 194 220 202 208 208 C 208 198 206 190 202 184 "
             "C 194 198 186 210 178 218 C 176 230 172 242 164 252 Z")
    lock = ("M 180 196 C 168 220 160 280 164 334 C 166 348 172 358 180 366 "
            "C 182 350 186 330 192 314 C 186 300 178 290 176 270 C 174 246 178 222 188 204 Z")
    shine = "M 190 160 C 216 138 296 138 322 160"
    strands = [
        "M 210 130 C 200 150 200 176 208 206",
        "M 256 124 C 250 146 248 170 244 208",
        "M 300 130 C 310 150 312 176 304 192",
        "M 176 200 C 170 240 168 290 172 340",
    ]
    g = [
        f'<path d="{lock}" fill="url(#hair)" stroke="{X_OUT}" stroke-width="{X_SW}" stroke-linejoin="round"/>',
        f'<path d="{M(lock)}" fill="url(#hair)" stroke="{X_OUT}" stroke-width="{X_SW}" stroke-linejoin="round"/>',
        f'<path d="{bangs}" fill="url(#hair)" stroke="{X_OUT}" stroke-width="{X_SW}" stroke-linejoin="round"/>',
    ]
    g += [f'<path d="{d}" stroke="#5a2aa8" stroke-width="2.2" fill="none" stroke-linecap="round" opacity="0.55"/>' for d in strands]
    g.append(f'<path d="{M(strands[3])}" stroke="#5a2aa8" stroke-width="2.2" fill="none" stroke-linecap="round" opacity="0.55"/>')
    g.append(f'<path d="{shine}" stroke="#ffffff" stroke-width="7" fill="none" stroke-linecap="round" stroke-dasharray="22 9" opacity="0.75"/>')
    # a pixel-heart hair clip
    heart = "M 312 170 L 318 164 L 324 170 L 330 164 L 336 170 L 336 176 L 324 188 L 312 176 Z"
    g.append(f'<path d="{heart}" fill="{MAGENTA}" stroke="{X_OUT}" stroke-width="2.5" stroke-linejoin="round" filter="url(#glow)"/>')
    g.append('<rect x="316" y="168" width="4" height="4" fill="#ffffff"/>')
    return "\n".join(g)


def x_headset():
    band = "M 158 214 C 146 130 196 86 256 86 C 316 86 366 130 354 214"
    ear = "M 170 124 L 168 56 L 226 100 Z"
    ear_in = "M 178 112 L 177 76 L 210 101 Z"
    cup = '<rect x="136" y="214" width="36" height="74" rx="16"'
    g = [
        f'<path d="{band}" stroke="{X_OUT}" stroke-width="16" fill="none" stroke-linecap="round"/>',
        f'<path d="{band}" stroke="#3b2a6e" stroke-width="9" fill="none" stroke-linecap="round"/>',
        f'<path d="{band}" stroke="{CYAN}" stroke-width="2.5" fill="none" stroke-dasharray="10 8" filter="url(#glow)"/>',
    ]
    for ed, ei in ((ear, ear_in), (M(ear), M(ear_in))):
        g.append(f'<path d="{ed}" fill="url(#shell)" stroke="{X_OUT}" stroke-width="{X_SW}" stroke-linejoin="round"/>')
        g.append(f'<path d="{ei}" fill="{MAGENTA}" stroke="{MAGENTA}" stroke-width="2" stroke-linejoin="round" filter="url(#glow)"/>')
    for flip in (False, True):
        tr = ' transform="matrix(-1 0 0 1 512 0)"' if flip else ""
        g.append(f'<g{tr}>{cup} fill="url(#shell)" stroke="{X_OUT}" stroke-width="{X_SW}"/>'
                 f'<rect x="142" y="226" width="10" height="50" rx="5" fill="{CYAN}" filter="url(#glow)"/>'
                 '<path d="M 160 222 C 166 226 166 236 164 244" stroke="#ffffff" stroke-width="2.5" fill="none" opacity="0.5" stroke-linecap="round"/>'
                 '</g>')
    # microphone boom to the left corner of the mouth
    g.append(f'<path d="M 150 282 C 154 318 180 334 208 334" stroke="{X_OUT}" stroke-width="7" fill="none" stroke-linecap="round"/>')
    g.append('<path d="M 150 282 C 154 318 180 334 208 334" stroke="#4a3a80" stroke-width="3" fill="none" stroke-linecap="round"/>')
    g.append(f'<rect x="202" y="326" width="18" height="14" rx="7" fill="url(#shell)" stroke="{X_OUT}" stroke-width="3"/>')
    g.append(f'<circle cx="216" cy="333" r="3" fill="{MAGENTA}" filter="url(#glow)"/>')
    return "\n".join(g)


def x_extras_back(mood):
    if mood == "celebrating":
        cols = [CYAN, MAGENTA, VIOLET, "#fff36b", "#7dff9c"]
        s = [confetti(21, cols, 80, lambda x, y: True)]
        for d, c in [("M 16 130 C 46 100 66 150 96 120 C 126 90 136 140 156 110", CYAN),
                     ("M 496 140 C 466 110 446 160 416 130 C 386 100 376 150 356 120", MAGENTA),
                     ("M 24 300 C 54 270 64 320 94 290", VIOLET),
                     ("M 488 300 C 458 270 448 320 418 290", CYAN)]:
            s.append(f'<path d="{d}" stroke="{c}" stroke-width="6" fill="none" stroke-linecap="round" filter="url(#glow)"/>')
        return "\n".join(s)
    if mood == "excited":
        s = []
        for x, y, r, c in [(92, 110, 20, CYAN), (424, 96, 24, MAGENTA), (54, 220, 12, MAGENTA),
                           (460, 222, 14, CYAN), (120, 40, 10, "#fff36b"), (392, 36, 11, "#fff36b")]:
            s.append(f'<g filter="url(#glow)">{star4(x, y, r, c)}</g>')
        return "\n".join(s)
    if mood == "surprised":
        return ""
    return ""


def x_extras_front(mood):
    s = []
    if mood in ("happy", "celebrating", "excited", "neutral"):
        op = {"neutral": 0.45, "excited": 0.85}.get(mood, 1.0)
        for x in (196, 316):
            s.append(f'<ellipse cx="{x}" cy="303" rx="24" ry="10" fill="url(#blush)" opacity="{op}"/>')
        if mood != "neutral":
            for x in (184, 304):
                s.append(f'<path d="M {x} 308 L {x + 6} 298 M {x + 10} 308 L {x + 16} 298 M {x + 20} 308 L {x + 26} 298" '
                         'stroke="#ff4f9a" stroke-width="2.2" stroke-linecap="round" opacity="0.85"/>')
    if mood == "excited":
        for side in (-1, 1):
            for y, l in [(200, 36), (232, 50), (264, 36)]:
                x0 = 256 + side * 126
                c = CYAN if side < 0 else MAGENTA
                s.append(f'<path d="M {x0 + side * 6} {y} L {x0 + side * (6 + l)} {y - 8}" stroke="{c}" stroke-width="4" '
                         'stroke-linecap="round" filter="url(#glow)"/>')
    if mood == "tense":
        s.append(drop(356, 170, 1.2, X_OUT, "drop"))
        s.append(drop(158, 184, 0.75, X_OUT, "drop"))
        for side in (-1, 1):
            x0 = 256 + side * 130
            s.append(f'<path d="M {x0} 300 C {x0 + side * 6} 292 {x0 + side * 12} 308 {x0 + side * 18} 300 C {x0 + side * 24} 292 {x0 + side * 30} 308 {x0 + side * 36} 300" '
                     f'stroke="{VIOLET}" stroke-width="3" fill="none" stroke-linecap="round"/>')
    if mood == "surprised":
        for x, y, a in [(392, 70, 14), (430, 96, 28)]:
            s.append(f'<g transform="translate({x} {y}) rotate({a})" filter="url(#glow)">'
                     f'<rect x="-6" y="-34" width="12" height="34" rx="6" fill="{MAGENTA}" stroke="{X_OUT}" stroke-width="3"/>'
                     f'<circle cx="0" cy="12" r="7" fill="{MAGENTA}" stroke="{X_OUT}" stroke-width="3"/></g>')
        for ang in (-40, -15, 10):
            s.append(f'<g transform="translate(132 120) rotate({ang - 90})">'
                     f'<path d="M 14 0 L 40 0" stroke="{CYAN}" stroke-width="5" stroke-linecap="round" filter="url(#glow)"/></g>')
    if mood == "disappointed":
        for x in (226, 242, 258, 274, 290):
            s.append(f'<path d="M {x} 150 L {x} {176 if x % 32 else 186}" stroke="#3a1d6e" stroke-width="3" stroke-linecap="round" opacity="0.6"/>')
        # a cracked pixel heart drifting above
        heart = "M 400 80 L 410 70 L 420 80 L 430 70 L 440 80 L 440 90 L 420 110 L 400 90 Z"
        s.append(f'<path d="{heart}" fill="#6a5a8c" stroke="{X_OUT}" stroke-width="3" stroke-linejoin="round"/>')
        s.append(f'<path d="M 420 78 L 414 88 L 424 94 L 418 106" stroke="{X_OUT}" stroke-width="3" fill="none" stroke-linejoin="round"/>')
        s.append(drop(112, 150, 0.7, X_OUT, "drop"))
    if mood == "celebrating":
        cols = [CYAN, MAGENTA, VIOLET, "#fff36b", "#7dff9c"]
        s.append(confetti(23, cols, 18, lambda x, y: (x < 124 or x > 388) and y < 320))
        for x, y, r, c in [(80, 60, 16, "#fff36b"), (440, 60, 18, CYAN)]:
            s.append(f'<g filter="url(#glow)">{star4(x, y, r, c)}</g>')
    return "\n".join(s)


def pixel(mood, talk):
    doc = Doc()
    doc.defs.append(x_defs())
    doc.add(x_extras_back(mood))
    doc.add(x_hair_back())
    doc.add(x_body())
    doc.add(x_face())
    doc.add(x_mouth(doc, mood, talk))
    for cx, cy, s in X_EYES:
        if DRAW_EYES:
            doc.add(in_lid(doc, P(X_LID, cx, cy, s), x_eye(doc, cx, cy, s, mood)))
    doc.add(x_hair_front())
    doc.add(x_brows(mood))
    doc.add(x_headset())
    doc.add(x_extras_front(mood))
    return doc.svg()


def pixel_blink():
    doc = Doc()
    doc.defs.append(x_defs())
    for cx, cy, s in X_EYES:
        lid = P(X_LID, cx, cy, s)
        doc.add(f'<path d="{lid}" fill="url(#skin)"/>')
        doc.add(f'<path d="{lid}" fill="url(#lidshade)"/>')
        doc.add(f'<path d="{P("M -18 -9 C -4 -15 12 -15 25 -9", cx, cy, s)}" stroke="{X_SKIN_SHADE}" '
                'stroke-width="2.2" fill="none" stroke-linecap="round"/>')
        doc.add(f'<path d="{P("M -25 4 C -12 15 14 15 29 1", cx, cy, s)}" stroke="{X_OUT}" '
                'stroke-width="5.5" fill="none" stroke-linecap="round"/>')
        doc.add(f'<path d="{P("M 27 2 L 35 4 M 22 7 L 28 12", cx, cy, s)}" stroke="{X_OUT}" '
                'stroke-width="3" fill="none" stroke-linecap="round"/>')
    return doc.svg()


# ================================================================ output

CHARACTERS = {
    "auctioneer": (auctioneer, auctioneer_blink),
    "pixel": (pixel, pixel_blink),
}


def main():
    rsvg = shutil.which("rsvg-convert")
    if not rsvg:
        sys.exit("rsvg-convert not found: apt-get install -y librsvg2-bin")
    for name, (face, blink) in CHARACTERS.items():
        folder = os.path.join(HERE, name)
        os.makedirs(folder, exist_ok=True)
        files = {}
        for mood in MOODS:
            files[mood] = face(mood, False)
            files[mood + "-talk"] = face(mood, True)
        files["blink"] = blink()
        for stem, text in files.items():
            svg = os.path.join(folder, stem + ".svg")
            png = os.path.join(folder, stem + ".png")
            with open(svg, "w", encoding="utf-8") as f:
                f.write(text)
            subprocess.run([rsvg, "-w", "512", "-h", "512", "-f", "png", "-o", png, svg], check=True)
            print(f"wrote {os.path.relpath(svg, HERE)} and {os.path.relpath(png, HERE)}")


if __name__ == "__main__":
    main()
