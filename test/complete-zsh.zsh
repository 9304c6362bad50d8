# zsh -f test/complete-zsh.zsh SCRIPT LINE... : for each LINE, prints "LINE => match|match…", what zsh's
# completion offers at its end, run in an interactive zsh on a pseudo-terminal (zpty).
# Used by test/cli-completion.test.ts.
zmodload zsh/zpty
local line out i=0
local -a found
zpty z zsh -f -i
zpty -w z "PS1=; autoload -U compinit && compinit -u -D && source ${(q)1}"
# Every match added goes through compadd: print them before adding.
zpty -w z 'compadd() { local -a hits; builtin compadd -A hits "$@"; (( $#hits )) && print -r -- "<<${(j:|:)hits}>>"; builtin compadd "$@"; }'
zpty -w z "zstyle ':completion:*' menu no; bindkey '^I' complete-word"
zpty -w z "print -r -- RE''ADY"
zpty -r z out '*READY*' # the set-up lines' echo and output are read and dropped
for line in "${@[2,-1]}"; do
  (( i++ ))
  zpty -w -n z "$line"$'\t\C-u'
  # The marker is split in the command so that the terminal's echo of it does not match.
  zpty -w z "print -r -- END''$i"
  out=''
  zpty -r z out "*END$i*"
  found=()
  while [[ $out =~ '<<([^>]*)>>' ]]; do
    found+=(${(s:|:)match[1]})
    out=${out[$((MEND + 1)),-1]}
  done
  print -r -- "$line => ${(j:|:)${(@ou)found}}"
done
zpty -d z
