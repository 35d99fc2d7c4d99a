// A turnable 3D view of a triangle mesh in a <canvas>, WebGL 1 only, no library and nothing fetched:
// the gallery page embeds each mesh as JSON ({"v": [x, y, z, ...], "f": [a, b, c, ...]}, y up) in a
// <script type="application/json" id="..."> that the canvas names in data-mesh. Drag to turn it.
// After the first frame the canvas records how many of its pixels differ from the background
// (data-drawn), and the body how many canvases drew something (data-meshes-total / -drawn): what the
// gallery's --check reads back from headless Chromium.
(function () {
  var VERT = "attribute vec3 p; attribute vec3 n; uniform mat3 r; uniform vec3 c; uniform float s;" +
    "varying float shade; void main() { vec3 q = r * ((p - c) * s); vec3 m = normalize(r * n);" +
    "shade = 0.35 + 0.65 * abs(dot(m, normalize(vec3(0.4, 0.8, 0.5))));" +
    "gl_Position = vec4(q.x, q.y, -q.z * 0.5, 1.0); }";
  var FRAG = "precision mediump float; varying float shade;" +
    "void main() { gl_FragColor = vec4(shade * vec3(0.55, 0.65, 0.85), 1.0); }";

  function shader(gl, type, source) {
    var s = gl.createShader(type);
    gl.shaderSource(s, source);
    gl.compileShader(s);
    return s;
  }

  function rotation(yaw, pitch) {  // column-major 3x3: pitch about x after yaw about y
    var cy = Math.cos(yaw), sy = Math.sin(yaw), cp = Math.cos(pitch), sp = Math.sin(pitch);
    return new Float32Array([cy, sy * sp, -sy * cp, 0, cp, sp, sy, -cy * sp, cy * cp]);
  }

  function view(canvas, mesh) {
    var gl = canvas.getContext("webgl", {preserveDrawingBuffer: true, antialias: true});
    if (!gl) { canvas.dataset.drawn = 0; return false; }
    var v = mesh.v, f = mesh.f, pos = [], nor = [], lo = [1e9, 1e9, 1e9], hi = [-1e9, -1e9, -1e9];
    for (var i = 0; i < v.length; i += 3)
      for (var k = 0; k < 3; k++) { lo[k] = Math.min(lo[k], v[i + k]); hi[k] = Math.max(hi[k], v[i + k]); }
    for (var j = 0; j < f.length; j += 3) {
      var a = f[j] * 3, b = f[j + 1] * 3, c = f[j + 2] * 3;
      var e1 = [v[b] - v[a], v[b + 1] - v[a + 1], v[b + 2] - v[a + 2]];
      var e2 = [v[c] - v[a], v[c + 1] - v[a + 1], v[c + 2] - v[a + 2]];
      var nn = [e1[1] * e2[2] - e1[2] * e2[1], e1[2] * e2[0] - e1[0] * e2[2], e1[0] * e2[1] - e1[1] * e2[0]];
      [a, b, c].forEach(function (o) { pos.push(v[o], v[o + 1], v[o + 2]); nor.push(nn[0], nn[1], nn[2]); });
    }
    var prog = gl.createProgram();
    gl.attachShader(prog, shader(gl, gl.VERTEX_SHADER, VERT));
    gl.attachShader(prog, shader(gl, gl.FRAGMENT_SHADER, FRAG));
    gl.linkProgram(prog);
    gl.useProgram(prog);
    [["p", pos], ["n", nor]].forEach(function (attr) {
      gl.bindBuffer(gl.ARRAY_BUFFER, gl.createBuffer());
      gl.bufferData(gl.ARRAY_BUFFER, new Float32Array(attr[1]), gl.STATIC_DRAW);
      var loc = gl.getAttribLocation(prog, attr[0]);
      gl.enableVertexAttribArray(loc);
      gl.vertexAttribPointer(loc, 3, gl.FLOAT, false, 0, 0);
    });
    var extent = Math.max(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]) || 1;
    gl.uniform3f(gl.getUniformLocation(prog, "c"), (lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, (lo[2] + hi[2]) / 2);
    gl.uniform1f(gl.getUniformLocation(prog, "s"), 1.1 / extent);
    gl.enable(gl.DEPTH_TEST);
    var yaw = -0.6, pitch = 0.35, count = pos.length / 3;
    function draw() {
      gl.uniformMatrix3fv(gl.getUniformLocation(prog, "r"), false, rotation(yaw, pitch));
      gl.clearColor(1, 1, 1, 1);
      gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
      gl.drawArrays(gl.TRIANGLES, 0, count);
    }
    draw();
    var px = new Uint8Array(canvas.width * canvas.height * 4), drawn = 0;
    gl.readPixels(0, 0, canvas.width, canvas.height, gl.RGBA, gl.UNSIGNED_BYTE, px);
    for (var q = 0; q < px.length; q += 4) if (px[q] < 250 || px[q + 1] < 250 || px[q + 2] < 250) drawn++;
    canvas.dataset.drawn = drawn;
    var last = null;
    canvas.addEventListener("mousedown", function (e) { last = [e.clientX, e.clientY]; });
    window.addEventListener("mouseup", function () { last = null; });
    window.addEventListener("mousemove", function (e) {
      if (!last) return;
      yaw += (e.clientX - last[0]) * 0.01;
      pitch = Math.max(-1.5, Math.min(1.5, pitch + (e.clientY - last[1]) * 0.01));
      last = [e.clientX, e.clientY];
      draw();
    });
    return drawn > 0;
  }

  window.addEventListener("load", function () {
    var canvases = Array.prototype.slice.call(document.querySelectorAll("canvas[data-mesh]")), drawn = 0;
    canvases.forEach(function (canvas) {
      var data = document.getElementById(canvas.dataset.mesh);
      if (data && view(canvas, JSON.parse(data.textContent))) drawn++;
    });
    document.body.dataset.meshesTotal = canvases.length;
    document.body.dataset.meshesDrawn = drawn;
  });
})();
