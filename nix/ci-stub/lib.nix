# lib for the CI stub (see flake.nix): the functions hapgent's Nix files
# use, with nixpkgs' names and meaning, and a small module system that
# behaves like nixpkgs' for what the NixOS module does: declared options
# only (an unknown option is an error), type checks, mkIf/mkMerge/
# mkDefault/mkForce, readOnly, freeform submodules.
let
  inherit (builtins)
    all
    attrNames
    concatLists
    concatMap
    concatStringsSep
    elem
    filter
    foldl'
    functionArgs
    head
    intersectAttrs
    isAttrs
    isBool
    isFunction
    isInt
    isList
    isPath
    isString
    length
    listToAttrs
    mapAttrs
    stringLength
    substring
    toJSON
    ;

  lib = rec {
    genAttrs =
      names: f:
      listToAttrs (
        map (name: {
          inherit name;
          value = f name;
        }) names
      );
    optionalAttrs = cond: as: if cond then as else { };
    optionalString = cond: s: if cond then s else "";
    optional = cond: x: if cond then [ x ] else [ ];
    hasPrefix = prefix: s: substring 0 (stringLength prefix) s == prefix;
    escapeShellArg = s: "'${builtins.replaceStrings [ "'" ] [ "'\\''" ] (toString s)}'";
    unique = foldl' (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ];
    getExe =
      drv:
      "${drv}/bin/${drv.meta.mainProgram or (throw "lib.getExe: ${drv.name} has no meta.mainProgram")}";
    literalExpression = text: {
      _type = "literalExpression";
      inherit text;
    };
    licenses = {
      mit.spdxId = "MIT";
      asl20.spdxId = "Apache-2.0";
    };
    platforms.linux = [
      "x86_64-linux"
      "aarch64-linux"
    ];

    # A file set is a list of paths here; like nixpkgs, a missing path is
    # an error, and the source holds exactly those files and directories.
    fileset = {
      unions = paths: concatLists (map (p: if isList p then p else [ p ]) paths);
      toSource =
        { root, fileset }:
        let
          wanted = map (
            p: if builtins.pathExists p then toString p else throw "lib.fileset: ${toString p} does not exist"
          ) fileset;
        in
        builtins.path {
          name = "source";
          path = root;
          filter =
            path: _type:
            builtins.any (w: path == w || hasPrefix (w + "/") path || hasPrefix (path + "/") w) wanted;
        };
    };

    # Properties, as in nixpkgs' lib/modules.nix.
    mkIf = condition: content: {
      _type = "if";
      inherit condition content;
    };
    mkMerge = contents: {
      _type = "merge";
      inherit contents;
    };
    mkOverride = priority: content: {
      _type = "override";
      inherit priority content;
    };
    mkOptionDefault = mkOverride 1500;
    mkDefault = mkOverride 1000;
    mkForce = mkOverride 50;

    mkOption = attrs: attrs // { _type = "option"; };
    mkEnableOption =
      name:
      mkOption {
        type = types.bool;
        default = false;
        description = "Whether to enable ${name}.";
      };

    showOption = loc: concatStringsSep "." loc;

    types = rec {
      mkOptionType =
        {
          name,
          check ? (_: true),
          merge ? mergeEqual,
        }:
        {
          _type = "option-type";
          inherit name check merge;
        };
      mergeEqual =
        loc: defs:
        let
          first = head defs;
        in
        if all (d: d.value == first.value) defs then
          first.value
        else
          throw "The option `${showOption loc}' has conflicting definition values: ${
            concatStringsSep ", " (map (d: "${d.file}") defs)
          }";
      checked =
        loc: type: defs:
        let
          bad = filter (d: !type.check d.value) defs;
        in
        if bad == [ ] then
          defs
        else
          throw "A definition for option `${showOption loc}' (in ${(head bad).file}) is not of type `${type.name}'.";

      bool = mkOptionType {
        name = "bool";
        check = isBool;
      };
      str = mkOptionType {
        name = "str";
        check = isString;
      };
      int = mkOptionType {
        name = "int";
        check = isInt;
      };
      port = mkOptionType {
        name = "16 bit unsigned integer";
        check = v: isInt v && v >= 0 && v <= 65535;
      };
      enum =
        values:
        mkOptionType {
          name = "one of ${concatStringsSep ", " (map toJSON values)}";
          check = v: elem v values;
        };
      package = mkOptionType {
        name = "package";
        check = v: isAttrs v && (v.type or null) == "derivation";
      };
      lines = mkOptionType {
        name = "strings concatenated with \"\\n\"";
        check = isString;
        merge = _loc: defs: concatStringsSep "\n" (map (d: d.value) defs);
      };
      attrs = mkOptionType {
        name = "attribute set";
        check = isAttrs;
        merge = _loc: defs: foldl' (acc: d: acc // d.value) { } defs;
      };
      anything = mkOptionType {
        name = "anything";
        merge =
          loc: defs:
          if all (d: isAttrs d.value && !(d.value ? type)) defs then
            (attrsOf anything).merge loc defs
          else
            mergeEqual loc defs;
      };
      nullOr =
        t:
        mkOptionType {
          name = "null or ${t.name}";
          check = v: v == null || t.check v;
          merge =
            loc: defs:
            let
              nonNull = filter (d: d.value != null) defs;
            in
            if nonNull == [ ] then null else t.merge loc nonNull;
        };
      either =
        a: b:
        mkOptionType {
          name = "${a.name} or ${b.name}";
          check = v: a.check v || b.check v;
          merge =
            loc: defs:
            if all (d: a.check d.value) defs then
              a.merge loc defs
            else if all (d: b.check d.value) defs then
              b.merge loc defs
            else
              throw "The option `${showOption loc}' has definitions of mixed types.";
        };
      listOf =
        t:
        mkOptionType {
          name = "list of ${t.name}";
          check = isList;
          merge =
            loc: defs:
            let
              elems = concatMap (d: map (value: { inherit (d) file; inherit value; }) d.value) defs;
              pushed = concatMap (d: map (x: x // { inherit (d) file; }) (dischargeProperties 100 d.value)) elems;
            in
            map (d: d.value) (checked loc t pushed);
        };
      attrsOf =
        t:
        mkOptionType {
          name = "attribute set of ${t.name}";
          check = isAttrs;
          # As in nixpkgs, an attribute whose definitions are all under a
          # false mkIf is absent, not "used but not defined".
          merge =
            loc: defs:
            let
              names = unique (concatMap (d: attrNames d.value) defs);
              defsOf =
                name:
                concatMap (
                  d:
                  optional (d.value ? ${name}) {
                    inherit (d) file;
                    value = d.value.${name};
                  }
                ) defs;
              live = name: builtins.any (d: dischargeProperties 100 d.value != [ ]) (defsOf name);
            in
            listToAttrs (
              map (name: {
                inherit name;
                value = evalOptionValue (loc ++ [ name ]) { type = t; } (defsOf name);
              }) (filter live names)
            );
        };
      submodule =
        module:
        mkOptionType {
          name = "submodule";
          check = v: isAttrs v || isFunction v;
          merge =
            loc: defs:
            (evalModules {
              prefix = loc;
              modules = [ module ] ++ map (d: { config = d.value; }) defs;
            }).config;
        };
    };

    # [ { value; priority; } ] for one definition, its properties applied.
    dischargeProperties =
      priority: v:
      let
        t = if isAttrs v then v._type or null else null;
      in
      if t == "if" then
        if isBool v.condition then
          (if v.condition then dischargeProperties priority v.content else [ ])
        else
          throw "mkIf called with a non-Boolean condition"
      else if t == "merge" then
        concatMap (dischargeProperties priority) v.contents
      else if t == "override" then
        dischargeProperties v.priority v.content
      else
        [ { inherit priority; value = v; } ];

    # Moves properties above an attribute set down onto its attributes, so
    # that a module's `config = mkIf cfg.enable { ... }` says which options
    # it defines without evaluating the condition (which may need them).
    pushDownProperties =
      v:
      let
        t = v._type or null;
        under = wrap: map (mapAttrs (_: wrap)) ;
      in
      if t == "if" then
        under (mkIf v.condition) (pushDownProperties v.content)
      else if t == "merge" then
        concatMap pushDownProperties v.contents
      else if t == "override" then
        under (mkOverride v.priority) (pushDownProperties v.content)
      else if isAttrs v then
        [ v ]
      else
        throw "a definition that should be an attribute set is not";

    evalOptionValue =
      loc: opt: defs:
      let
        type = opt.type or types.anything;
        all' = optional (opt ? default) {
          file = "the default of ${showOption loc}";
          value = mkOptionDefault opt.default;
        } ++ defs;
        flat = concatMap (d: map (x: x // { inherit (d) file; }) (dischargeProperties 100 d.value)) all';
        best = foldl' (m: x: if x.priority < m then x.priority else m) 9999 flat;
        chosen = filter (x: x.priority == best) flat;
      in
      if (opt.readOnly or false) && length all' > 1 then
        throw "The option `${showOption loc}' is read-only, but it's set multiple times."
      else if chosen == [ ] then
        throw "The option `${showOption loc}' is used but not defined."
      else
        type.merge loc (types.checked loc type chosen);

    isOption = v: isAttrs v && (v._type or null) == "option";

    # The configuration under `loc`, given the option declarations there and
    # the definitions (attribute sets, maybe under properties) of it.
    evalTree =
      loc: decls: freeform: defs:
      let
        pushed = concatMap (
          d:
          map (value: {
            inherit (d) file;
            inherit value;
          }) (pushDownProperties d.value)
        ) defs;
        defined = unique (concatMap (d: attrNames d.value) pushed);
        unknown = filter (n: !(decls ? ${n})) defined;
        defsOf =
          name:
          concatMap (
            d:
            optional (d.value ? ${name}) {
              inherit (d) file;
              value = d.value.${name};
            }
          ) pushed;
        declared = mapAttrs (
          name: decl:
          if isOption decl then
            evalOptionValue (loc ++ [ name ]) decl (defsOf name)
          else
            evalTree (loc ++ [ name ]) decl null (defsOf name)
        ) decls;
        free = freeform.merge loc (
          map (d: {
            inherit (d) file;
            value = intersectAttrs (genAttrs unknown (_: null)) d.value;
          }) pushed
        );
      in
      if unknown == [ ] then
        declared
      else if freeform != null then
        free // declared
      else
        throw "The option `${showOption (loc ++ [ (head unknown) ])}' does not exist (defined in ${
          concatStringsSep ", " (map (d: d.file) (defsOf (head unknown)))
        }).";

    evalModules =
      {
        modules,
        specialArgs ? { },
        prefix ? [ ],
      }:
      let
        args = specialArgs // {
          inherit lib config options;
        };
        special = [
          "_file"
          "key"
          "imports"
          "freeformType"
        ];
        collect =
          file: m:
          let
            loaded = if isPath m || isString m then import m else m;
            here = if isPath m || isString m then toString m else file;
            called = if isFunction loaded then loaded (intersectAttrs (functionArgs loaded) args) else loaded;
            full = called ? options || called ? config;
            extra = filter (n: !(elem n (special ++ [ "options" "config" ]))) (attrNames called);
            normal = {
              file = here;
              options = if full then called.options or { } else { };
              config = if full then called.config or { } else removeAttrs called special;
              freeformType = called.freeformType or null;
            };
          in
          if full && extra != [ ] then
            throw "Module ${here} has an unsupported attribute `${head extra}'."
          else
            [ normal ] ++ concatMap (collect here) (called.imports or [ ]);
        collected = concatMap (collect "<unknown file>") modules;
        mergeDecls =
          loc: a: b:
          if isOption a || isOption b then
            throw "The option `${showOption loc}' is declared twice."
          else
            a // mapAttrs (n: v: if a ? ${n} then mergeDecls (loc ++ [ n ]) a.${n} v else v) b;
        options = foldl' (mergeDecls prefix) { } (map (m: m.options) collected);
        freeform = foldl' (acc: m: if m.freeformType != null then m.freeformType else acc) null collected;
        config = evalTree prefix options freeform (
          map (m: {
            inherit (m) file;
            value = m.config;
          }) collected
        );
      in
      {
        inherit config options;
      };
  };
in
lib
