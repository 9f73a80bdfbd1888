;; counter.wat: a raw wasm agent for the host ABI in ../ABI.md, written by
;; hand so the package tests need only wat2wasm (Debian package wabt).
;;
;; Each request increments a counter kept in session state ("count") and
;; one kept in linear memory ("hits", which only snapshots preserve), then
;; answers "count=N hits=M req=<request JSON>". ac_alarm never returns: the
;; tests use it to check that a deadline preempts a guest loop.
(module
  (import "agentcloud" "state_get" (func $state_get (param i32 i32 i32 i32) (result i32)))
  (import "agentcloud" "state_put" (func $state_put (param i32 i32 i32 i32) (result i32)))
  (import "agentcloud" "log" (func $log (param i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  ;; 0: out pointer slot, 4: out length slot, 16: heap top, 20: hits
  (data (i32.const 16) "\00\10\00\00")
  (data (i32.const 64) "count")
  (data (i32.const 96) "{\"status\":200,\"headers\":[[\"content-type\",\"text/plain\"]]}")
  (data (i32.const 200) "count=")
  (data (i32.const 208) " hits=")
  (data (i32.const 216) " req=")

  ;; ac_alloc: bump allocator, 8-byte aligned, growing memory as needed.
  (func $alloc (export "ac_alloc") (param $n i32) (result i32)
    (local $p i32) (local $end i32)
    (local.set $p (i32.and (i32.add (i32.load (i32.const 16)) (i32.const 7)) (i32.const -8)))
    (local.set $end (i32.add (local.get $p) (local.get $n)))
    (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.lt_s
              (memory.grow (i32.add (i32.shr_u (i32.sub (local.get $end) (i32.mul (memory.size) (i32.const 65536))) (i32.const 16)) (i32.const 1)))
              (i32.const 0))
          (then (return (i32.const 0))))))
    (i32.store (i32.const 16) (local.get $end))
    (local.get $p))

  (func (export "ac_free") (param i32))

  ;; copy n bytes from src to dst; returns dst+n.
  (func $copy (param $dst i32) (param $src i32) (param $n i32) (result i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (i32.store8 (local.get $dst) (i32.load8_u (local.get $src)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 1)))
        (local.set $src (i32.add (local.get $src) (i32.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $dst))

  ;; write n in decimal at dst; returns the end.
  (func $fmt (param $n i32) (param $dst i32) (result i32)
    (local $d i32) (local $t i32)
    (local.set $d (i32.const 1))
    (local.set $t (local.get $n))
    (block $done
      (loop $count
        (br_if $done (i32.lt_u (local.get $t) (i32.const 10)))
        (local.set $t (i32.div_u (local.get $t) (i32.const 10)))
        (local.set $d (i32.add (local.get $d) (i32.const 1)))
        (br $count)))
    (local.set $t (local.get $d))
    (loop $digit
      (local.set $t (i32.sub (local.get $t) (i32.const 1)))
      (i32.store8 (i32.add (local.get $dst) (local.get $t))
        (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $digit (i32.gt_u (local.get $t) (i32.const 0))))
    (i32.add (local.get $dst) (local.get $d)))

  ;; parse the decimal digits of len bytes at p.
  (func $parse (param $p i32) (param $len i32) (result i32)
    (local $n i32) (local $c i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $len)))
        (local.set $c (i32.sub (i32.load8_u (local.get $p)) (i32.const 48)))
        (if (i32.lt_u (local.get $c) (i32.const 10))
          (then (local.set $n (i32.add (i32.mul (local.get $n) (i32.const 10)) (local.get $c)))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (local.set $len (i32.sub (local.get $len) (i32.const 1)))
        (br $next)))
    (local.get $n))

  (func (export "ac_fetch") (param $req i32) (param $reqLen i32) (result i64)
    (local $n i32) (local $hits i32) (local $buf i32) (local $end i32)
    (local $resp i32) (local $q i32) (local $jl i32)
    ;; count = state_get("count") + 1, stored back
    (if (i32.eqz (call $state_get (i32.const 64) (i32.const 5) (i32.const 0) (i32.const 4)))
      (then (local.set $n (call $parse (i32.load (i32.const 0)) (i32.load (i32.const 4))))))
    (local.set $n (i32.add (local.get $n) (i32.const 1)))
    (local.set $buf (call $alloc (i32.const 16)))
    (local.set $end (call $fmt (local.get $n) (local.get $buf)))
    (drop (call $state_put (i32.const 64) (i32.const 5) (local.get $buf) (i32.sub (local.get $end) (local.get $buf))))
    (drop (call $log (i32.const 1) (i32.const 64) (i32.const 5)))
    ;; hits lives in linear memory
    (local.set $hits (i32.add (i32.load (i32.const 20)) (i32.const 1)))
    (i32.store (i32.const 20) (local.get $hits))
    ;; response: u32 json length | json | body
    (local.set $jl (i32.load (local.get $req)))
    (local.set $resp (call $alloc (i32.add (local.get $reqLen) (i32.const 124))))
    (i32.store (local.get $resp) (i32.const 56))
    (local.set $q (call $copy (i32.add (local.get $resp) (i32.const 4)) (i32.const 96) (i32.const 56)))
    (local.set $q (call $copy (local.get $q) (i32.const 200) (i32.const 6)))
    (local.set $q (call $fmt (local.get $n) (local.get $q)))
    (local.set $q (call $copy (local.get $q) (i32.const 208) (i32.const 6)))
    (local.set $q (call $fmt (local.get $hits) (local.get $q)))
    (local.set $q (call $copy (local.get $q) (i32.const 216) (i32.const 5)))
    (local.set $q (call $copy (local.get $q) (i32.add (local.get $req) (i32.const 4)) (local.get $jl)))
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $resp)) (i64.const 32))
      (i64.extend_i32_u (i32.sub (local.get $q) (local.get $resp)))))

  (func (export "ac_alarm") (result i32)
    (loop $forever (br $forever))
    (i32.const 0)))
